//go:build windows

package exredis

import "syscall"

func sysProcAttr() *syscall.SysProcAttr { return nil }
