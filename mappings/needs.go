package mappings

import (
	"bytes"
	_ "embed"
	"encoding/csv"
	"fmt"
	"io"
	"regexp"
	"slices"

	"github.com/student-mh-referrals/gateway/gateway"
)

// needsCSV is the needs vocabulary → SNOMED CT table. It is data, not code, so
// that a clinician can review and change it without reading Go; the notes
// column says why each concept was chosen.
//
//go:embed needs.csv
var needsCSV []byte

// NeedCode is one row of the needs table: the SNOMED CT concept a presenting
// need is sent as. An empty Code means the need is sent as text alone,
// because no finding fits it without implying a diagnosis.
type NeedCode struct {
	Need    string
	Code    string
	Display string
	Notes   string
}

// needCodes is the parsed table, keyed by need. It is loaded once at init:
// the table is embedded, so a malformed one is a build defect that the tests
// catch, not a run-time condition.
var needCodes = mustLoadNeeds(needsCSV)

var sctidPattern = regexp.MustCompile(`^[1-9][0-9]{5,17}$`)

// NeedCodes returns the needs table in file order, for documentation and
// review tools.
func NeedCodes() []NeedCode {
	out := make([]NeedCode, 0, len(needCodes))
	for _, n := range gateway.NeedCodes {
		if c, ok := needCodes[n]; ok {
			out = append(out, c)
		}
	}
	return out
}

func mustLoadNeeds(data []byte) map[string]NeedCode {
	m, err := loadNeeds(data)
	if err != nil {
		panic("mappings: needs.csv: " + err.Error())
	}
	return m
}

func loadNeeds(data []byte) (map[string]NeedCode, error) {
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = 4
	header, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("read header: %w", err)
	}
	if !slices.Equal(header, []string{"need", "snomed_code", "snomed_display", "notes"}) {
		return nil, fmt.Errorf("header %q: want need,snomed_code,snomed_display,notes", header)
	}
	out := map[string]NeedCode{}
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		n := NeedCode{Need: rec[0], Code: rec[1], Display: rec[2], Notes: rec[3]}
		switch {
		case !slices.Contains(gateway.NeedCodes, n.Need):
			return nil, fmt.Errorf("need %q is not in the needs vocabulary", n.Need)
		case out[n.Need] != (NeedCode{}):
			return nil, fmt.Errorf("need %q is listed twice", n.Need)
		case n.Code != "" && !sctidPattern.MatchString(n.Code):
			return nil, fmt.Errorf("need %q: %q is not a SNOMED CT concept id", n.Need, n.Code)
		case (n.Code == "") != (n.Display == ""):
			return nil, fmt.Errorf("need %q: a code needs its display and a display its code", n.Need)
		case n.Notes == "":
			return nil, fmt.Errorf("need %q: notes are required (say why this concept)", n.Need)
		}
		out[n.Need] = n
	}
	return out, nil
}
