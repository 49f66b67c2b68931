//go:build !unix

package keyring

// lockFile is a no-op where flock does not exist: key file updates then
// rely on the atomic rename alone, and must not run concurrently.
func lockFile(string) (unlock func(), err error) { return func() {}, nil }
