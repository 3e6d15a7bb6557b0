//go:build windows

package exredis

import (
	"os"
	"syscall"
)

func sysProcAttr() *syscall.SysProcAttr { return nil }

// isTerminal is a guess on Windows: a character device.
func isTerminal(f *os.File) bool { return charDevice(f) }
