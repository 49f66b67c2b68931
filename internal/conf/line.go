package conf

import (
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Line returns the line of the deepest part of path that is in n, so that
// a validation error can point into the file: the key's line for "a.b",
// the element's for "a[2]". path is dotted keys, each optionally indexed
// ("rules[2].when.score"). 0 means not even the first key is in n: the
// value failing validation is a default.
func Line(n *yaml.Node, path string) int {
	line, _ := find(n, path)
	return line
}

// Lookup returns the value node path names in n, or nil if a part of it is
// missing.
func Lookup(n *yaml.Node, path string) *yaml.Node {
	_, v := find(n, path)
	return v
}

// find walks path down from n. It returns the line of the deepest part
// found and, if every part was found, the node path names.
func find(n *yaml.Node, path string) (line int, v *yaml.Node) {
	if n != nil && n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	for part := range strings.SplitSeq(path, ".") {
		key, idx := part, -1
		if open := strings.IndexByte(part, '['); open >= 0 && strings.HasSuffix(part, "]") {
			key = part[:open]
			if i, err := strconv.Atoi(part[open+1 : len(part)-1]); err == nil {
				idx = i
			}
		}
		k, v := mappingEntry(n, key)
		if v == nil {
			return line, nil
		}
		line, n = k.Line, v
		if idx >= 0 {
			if n.Kind != yaml.SequenceNode || idx >= len(n.Content) {
				return line, nil
			}
			n = n.Content[idx]
			line = n.Line
		}
	}
	return line, n
}

// mappingEntry returns the key and value nodes of key in mapping n.
func mappingEntry(n *yaml.Node, key string) (k, v *yaml.Node) {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i], n.Content[i+1]
		}
	}
	return nil, nil
}
