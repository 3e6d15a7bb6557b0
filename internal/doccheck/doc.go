// Package doccheck holds no code: its test builds and runs every Go
// program shown in README.md and docs/*.md, and parses every Go fragment
// shown there, so the documentation cannot drift from the API.
package doccheck
