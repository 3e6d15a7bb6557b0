package payload

import (
	"encoding/base64"
	"fmt"
	"math"
	"unicode/utf8"
)

// JSONable turns what msgpack decodes into a value encoding/json accepts,
// for the CLI and the console, which show msgpack payloads as JSON: maps
// with non-string keys get string keys, byte strings are text when they
// are UTF-8 and otherwise base64 with b64Prefix in front (so a reader can
// tell them from text), and non-finite floats, which JSON cannot carry,
// become text. It changes maps and slices in place.
func JSONable(v any, b64Prefix string) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = JSONable(e, b64Prefix)
		}
		return x
	case map[any]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[fmt.Sprint(k)] = JSONable(e, b64Prefix)
		}
		return out
	case []any:
		for i, e := range x {
			x[i] = JSONable(e, b64Prefix)
		}
		return x
	case []byte:
		if utf8.Valid(x) {
			return string(x)
		}
		return b64Prefix + base64.StdEncoding.EncodeToString(x)
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return fmt.Sprint(x)
		}
	case float32:
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return fmt.Sprint(x)
		}
	}
	return v
}
