package reftest

import (
	"bytes"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

var update = flag.Bool("update", false, "rewrite testdata/*.hex from the builders")

// TestGolden pins every frame the builders produce to testdata (and so to
// the bytes reviewed there); -update rewrites the files.
func TestGolden(t *testing.T) {
	t.Parallel()
	goldens, err := Goldens()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, g := range goldens {
		file := filepath.Join("testdata", g.Name+"."+string(g.Enc)+".hex")
		seen[filepath.Base(file)] = true
		if *update {
			if err := os.WriteFile(file, formatGolden(g), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := LoadGolden(file)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(g.Frame, want) {
			t.Errorf("%s: built\n%x\nfile\n%x", file, g.Frame, want)
		}
	}
	files, _ := filepath.Glob(filepath.Join("testdata", "*.hex"))
	for _, f := range files {
		if !seen[filepath.Base(f)] {
			t.Errorf("%s: no builder produces it", f)
		}
	}
}

// formatGolden writes the comment header and the frame as hex, 16 bytes a line.
func formatGolden(g Golden) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# %s, %s, frame type 0x%02x, %s\n", g.Name, g.Enc, g.Type, g.Dir)
	fmt.Fprintf(&b, "# follows: %s\n", g.Source)
	fmt.Fprintf(&b, "# note: %s\n", g.Note)
	if p := g.Frame[5:]; len(p) > 0 && p[0] == '{' && utf8.Valid(p) {
		fmt.Fprintf(&b, "# payload: %s\n", p)
	}
	for i := 0; i < len(g.Frame); i += 16 {
		line := g.Frame[i:min(i+16, len(g.Frame))]
		parts := make([]string, len(line))
		for j, c := range line {
			parts[j] = hex.EncodeToString([]byte{c})
		}
		b.WriteString(strings.Join(parts, " ") + "\n")
	}
	return b.Bytes()
}
