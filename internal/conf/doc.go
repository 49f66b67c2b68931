// Package conf holds the building blocks for postured's config files:
// redacted secrets, durations with a days form, strict decoding that names
// the file line of every unknown key, ${VAR} expansion over parsed YAML,
// and the lookup that turns a key path back into its line.
package conf
