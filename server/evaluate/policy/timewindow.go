package policy

import (
	"fmt"
	"strings"
	"time"
	_ "time/tzdata" // time zones for rules in distroless and scratch images
)

// timeCond is a compiled TimeWindow.
type timeCond struct {
	days     [7]bool // by time.Weekday
	allDays  bool
	from, to int // minutes of day; from == to == -1: whole day
	loc      *time.Location
	spec     TimeWindow
}

var dayNames = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
	"sunday": time.Sunday, "monday": time.Monday, "tuesday": time.Tuesday, "wednesday": time.Wednesday,
	"thursday": time.Thursday, "friday": time.Friday, "saturday": time.Saturday,
}

func compileTime(w TimeWindow, path string, errs *errorList) (condition, bool) {
	ok := true
	c := &timeCond{from: -1, to: -1, spec: w, allDays: len(w.Days) == 0}
	if len(w.Days) == 0 && w.From == "" && w.To == "" {
		errs.add(path, "give days and/or from and to")
		ok = false
	}
	for i, d := range w.Days {
		first, last, isRange := strings.Cut(strings.ToLower(strings.TrimSpace(d)), "-")
		a, okA := dayNames[first]
		b := a
		okB := true
		if isRange {
			b, okB = dayNames[last]
		}
		if !okA || !okB {
			errs.add(fmt.Sprintf("%s.days[%d]", path, i), "%q is not a day (mon..sun, or a range like mon-fri)", d)
			ok = false
			continue
		}
		for day := a; ; day = (day + 1) % 7 {
			c.days[day] = true
			if day == b {
				break
			}
		}
	}
	if (w.From == "") != (w.To == "") {
		errs.add(path, "give both from and to, or neither for the whole day")
		ok = false
	} else if w.From != "" {
		from, errF := parseClock(w.From, false)
		to, errT := parseClock(w.To, true)
		if errF != nil {
			errs.add(path+".from", "%v", errF)
			ok = false
		}
		if errT != nil {
			errs.add(path+".to", "%v", errT)
			ok = false
		}
		if errF == nil && errT == nil && (from == to || from == 0 && to == 24*60) {
			errs.add(path, "from %s and to %s span the whole day or nothing; omit both for the whole day", w.From, w.To)
			ok = false
		}
		c.from, c.to = from, to
	}
	tz := w.TimeZone
	if tz == "" {
		tz = "UTC"
	}
	loc, err := time.LoadLocation(tz)
	if err != nil || strings.EqualFold(tz, "local") {
		// Local would make a rule mean different things on different hosts.
		errs.add(path+".time_zone", "%q is not an IANA time zone like Europe/Berlin", tz)
		ok = false
	}
	c.loc = loc
	return c, ok
}

// parseClock reads "HH:MM" as minutes of the day; "24:00" only as an end.
func parseClock(s string, end bool) (int, error) {
	digit := func(b byte) bool { return b >= '0' && b <= '9' }
	if len(s) != 5 || s[2] != ':' || !digit(s[0]) || !digit(s[1]) || !digit(s[3]) || !digit(s[4]) {
		return 0, fmt.Errorf("%q must be HH:MM", s)
	}
	h, m := int(s[0]-'0')*10+int(s[1]-'0'), int(s[3]-'0')*10+int(s[4]-'0')
	if end && h == 24 && m == 0 {
		return 24 * 60, nil
	}
	if h > 23 || m > 59 {
		return 0, fmt.Errorf("%q is not a time of day (00:00..23:59)", s)
	}
	return h*60 + m, nil
}

func (c *timeCond) eval(ec *evalContext) ConditionTrace {
	t := ec.now.In(c.loc)
	m := t.Hour()*60 + t.Minute()
	day := t.Weekday()
	inHours := true
	switch {
	case c.from < 0: // whole day
	case c.from < c.to:
		inHours = m >= c.from && m < c.to
	case m >= c.from: // overnight window, evening part: today's window
	case m < c.to: // overnight window, morning part: yesterday's window
		day = (day + 6) % 7
	default:
		inHours = false
	}
	now := fmt.Sprintf("%s %s %s", t.Format("Mon"), t.Format("15:04"), c.loc)
	if inHours && (c.allDays || c.days[day]) {
		return held("time", "%s is within %s", now, c.describe())
	}
	return failed("time", "%s is outside %s", now, c.describe())
}

func (c *timeCond) describe() string {
	var parts []string
	if len(c.spec.Days) > 0 {
		parts = append(parts, strings.Join(c.spec.Days, ","))
	}
	if c.from >= 0 {
		parts = append(parts, c.spec.From+"-"+c.spec.To)
	} else {
		parts = append(parts, "all day")
	}
	return strings.Join(parts, " ")
}
