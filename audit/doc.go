// Package audit is the tamper-evident record of every answer postured gave.
//
// The log is JSON lines, one line per answered device (a [Record]). Every
// line carries "seq", its position in the chain counting from 1, and
// "prev", the hex SHA-256 of the exact bytes of the line before it (without
// its trailing newline). The first line of a chain has seq 1 and prev
// [Genesis], the SHA-256 of no bytes. Editing, inserting, deleting or
// reordering a line therefore breaks the chain at that line, which [Verify]
// names by file and line number.
//
// A [Writer] appends to one current file and rotates it by size: path
// "audit.jsonl" becomes "audit-20260102T150405.000000000Z.jsonl" (UTC, so
// names sort in chain order) and a new "audit.jsonl" continues the chain:
// its first line's prev is the hash of the rotated file's last line.
// Retention deletes the oldest rotated files.
//
// What a hash chain without a secret cannot show, and how to cover it:
//   - Lines deleted from the end, or the last line edited: no later line
//     refers to them. Record the head ([Writer.Head], [Summary.Head]) somewhere
//     the log's writer cannot change, and compare.
//   - Lines deleted from the start: the oldest remaining line looks like the
//     oldest file left by retention. [Summary.FirstSeq] says where the
//     verified chain starts; 1 means from genesis.
//   - A complete rewrite with recomputed hashes: anchoring the head covers
//     this too.
//
// A crash mid-write leaves a partial last line (no trailing newline). The
// next [New] does not chain onto it and does not refuse to start: it
// rotates the damaged file aside, untouched, and begins the new current
// file with a break line (see [Break]) that names the damaged file and line
// and chains to the last complete line before it. [Verify] accepts a
// partial line only when the next line is the break naming it, and counts
// it in [Summary.Breaks]; a partial line without one is reported as a
// truncated line.
package audit
