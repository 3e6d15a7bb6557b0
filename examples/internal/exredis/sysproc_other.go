//go:build !linux && !windows

package exredis

import (
	"os"
	"syscall"
)

// See sysproc_linux.go; other systems have no Pdeathsig.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// isTerminal is a guess elsewhere: a character device that is not
// /dev/null.
func isTerminal(f *os.File) bool { return charDevice(f) }
