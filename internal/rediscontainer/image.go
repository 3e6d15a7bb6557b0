package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
)

// errNoLocalServer means there is no redis-server here to pack into an
// image.
var errNoLocalServer = errors.New("no local redis-server to pack")

// installDirs are looked in after PATH: the harness's PATH may leave the
// binary out on purpose (its auto-selection test does), and the image
// should still not need a registry then.
var installDirs = []string{"/usr/bin", "/usr/local/bin", "/usr/sbin", "/usr/local/sbin"}

// findServer returns the redis-server to pack: bin if given, else the first
// one on PATH or in installDirs.
func findServer(bin string) (string, error) {
	if bin != "" {
		return filepath.Abs(bin)
	}
	if p, err := exec.LookPath("redis-server"); err == nil {
		return filepath.Abs(p)
	}
	for _, dir := range installDirs {
		p := filepath.Join(dir, "redis-server")
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", errNoLocalServer
}

// lddPath matches the absolute paths in ldd's output ("libc.so.6 =>
// /lib/x86_64-linux-gnu/libc.so.6 (0x...)", "/lib64/ld-linux-x86-64.so.2
// (0x...)"); the vDSO has none and is left out.
var lddPath = regexp.MustCompile(`(?m)(?:^\s*|=>\s*)(/\S+)\s+\(0x`)

// buildContext returns a docker build context (a tar archive) holding a
// Dockerfile FROM scratch, redis-server and every shared library it loads,
// at their paths on this machine, and a tag naming its content.
func buildContext(bin string) (*bytes.Reader, string, error) {
	if runtime.GOOS != "linux" {
		// A macOS binary cannot run in a Linux container.
		return nil, "", errNoLocalServer
	}
	server, err := findServer(bin)
	if err != nil {
		return nil, "", err
	}
	ldd := exec.Command("ldd", server)
	// The harness's tests may run us with a bare PATH (see findServer); ldd
	// and the tools its script calls live in the usual places.
	if ldd.Err != nil {
		ldd = exec.Command("/usr/bin/ldd", server)
	}
	ldd.Env = append(os.Environ(), "PATH="+os.Getenv("PATH")+":/usr/local/bin:/usr/bin:/bin")
	out, err := ldd.Output()
	if err != nil {
		return nil, "", fmt.Errorf("ldd %s: %w", server, err)
	}
	var libs []string
	for _, m := range lddPath.FindAllStringSubmatch(string(out), -1) {
		libs = append(libs, m[1])
	}
	sort.Strings(libs)

	var libDirs []string
	seen := map[string]bool{}
	for _, l := range libs {
		if d := path.Dir(l); !seen[d] {
			seen[d] = true
			libDirs = append(libDirs, d)
		}
	}
	// A scratch image has no ld.so.cache: name the directories.
	dockerfile := fmt.Sprintf("FROM scratch\nCOPY . /\nENV LD_LIBRARY_PATH=%s\nENTRYPOINT [\"/redis-server\"]\n",
		strings.Join(libDirs, ":"))

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	sum := sha256.New()
	add := func(name string, data []byte, mode int64) error {
		sum.Write([]byte(name))
		sum.Write(data)
		return errors.Join(
			tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: int64(len(data)), Typeflag: tar.TypeReg}),
			func() error { _, err := tw.Write(data); return err }(),
		)
	}
	if err := add("Dockerfile", []byte(dockerfile), 0o644); err != nil {
		return nil, "", err
	}
	files := append([]string{server}, libs...)
	for i, f := range files {
		data, err := os.ReadFile(f) // follows symlinks: the image gets the files themselves
		if err != nil {
			return nil, "", err
		}
		name := strings.TrimPrefix(f, "/")
		if i == 0 {
			name = "redis-server"
		}
		if err := add(name, data, 0o755); err != nil {
			return nil, "", fmt.Errorf("pack %s: %w", f, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, "", err
	}
	return bytes.NewReader(buf.Bytes()), hex.EncodeToString(sum.Sum(nil))[:16], nil
}
