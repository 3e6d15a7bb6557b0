//go:build !linux && !windows

package exredis

import "syscall"

// See sysproc_linux.go; other systems have no Pdeathsig.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
