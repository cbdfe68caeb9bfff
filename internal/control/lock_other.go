//go:build !unix

package control

import "os"

// lockFile is a no-op where flock(2) is missing: Listen then relies on
// connecting to the socket alone.
func lockFile(string) (*os.File, error) { return nil, nil }
