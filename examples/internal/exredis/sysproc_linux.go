//go:build linux

package exredis

import "syscall"

// The server gets its own process group, so a Ctrl-C in the terminal
// reaches only the example (which then stops the server in order), and
// Pdeathsig kills it if the example dies without stopping it.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
