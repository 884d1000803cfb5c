package gateway

import (
	"math"
	"slices"
	"strconv"
)

// Statistical disclosure control of the evaluation figures, as NHS England
// publishes statistics: a count from 1 to 7 is shown as "<8" (primary
// suppression), every other count is rounded to the nearest 5, and a count
// that would let a suppressed one be worked back out of a total is hidden as
// well (secondary suppression, shown "*"). A rate, median or percentile over
// fewer than 8 cases is not shown either. docs/evaluation.md states the
// rules and the algorithm; the functions here are pure so that a table test
// pins every edge.

// SmallCount is the smallest count shown: 1 to SmallCount-1 show as "<8".
const SmallCount = 8

// Displays of a figure that is not a number.
const (
	DisplaySmall       = "<8"          // primary suppression: 1 to 7
	DisplaySecondary   = "*"           // hidden so that a "<8" cannot be recovered from a total
	DisplayUnavailable = "unavailable" // the store holds no data for it (no return path yet)
)

// Cell is one published count: its rounded value, or why it is hidden. A raw
// count never leaves the package.
type Cell struct {
	// Value is the count rounded to the nearest 5; nil when hidden.
	Value *int `json:"value"`
	// Display is the value as a table shows it: "0", "15", "<8", "*" or
	// "unavailable".
	Display string `json:"display"`
}

// Additive says that the count at index Total is the sum of the counts at
// Parts: the relation a reader could use to work a hidden count back out.
type Additive struct {
	Total int
	Parts []int
}

// roundTo5 rounds a non-negative count to the nearest multiple of 5.
func roundTo5(n int) int { return (n + 2) / 5 * 5 }

// Suppress turns raw counts into published cells. Counts 1 to 7 are hidden
// ("<8"); then, while some relation in sums has exactly one hidden member,
// the smallest non-zero shown member of it is hidden too ("*"), a part
// before the total, so that no relation ever has a lone hidden member. Zero
// is shown: it discloses no one. The rest are rounded to the nearest 5.
func Suppress(counts []int, sums []Additive) []Cell {
	const (
		shown = iota
		small
		secondary
	)
	state := make([]int, len(counts))
	for i, n := range counts {
		if n > 0 && n < SmallCount {
			state[i] = small
		}
	}
	for changed := true; changed; {
		changed = false
		for _, s := range sums {
			members := append([]int{}, s.Parts...)
			members = append(members, s.Total) // parts first: the total goes last
			hidden, pick := 0, -1
			for _, m := range members {
				switch {
				case state[m] != shown:
					hidden++
				case counts[m] > 0 && (pick < 0 || counts[m] < counts[pick]):
					pick = m
				}
			}
			if hidden == 1 && pick >= 0 {
				state[pick] = secondary
				changed = true
			}
		}
	}
	out := make([]Cell, len(counts))
	for i, n := range counts {
		switch state[i] {
		case small:
			out[i] = Cell{Display: DisplaySmall}
		case secondary:
			out[i] = Cell{Display: DisplaySecondary}
		default:
			v := roundTo5(n)
			out[i] = Cell{Value: &v, Display: strconv.Itoa(v)}
		}
	}
	return out
}

// Rate is a published proportion, in per cent to one decimal place.
type Rate struct {
	Percent *float64 `json:"percent"`
	Display string   `json:"display"`
}

// PublishRate is num/den as a published rate. It is hidden ("<8") when den
// is under 8 cases, and when num is 1 to 7, because a rate and its published
// denominator would give the small numerator back.
func PublishRate(num, den int) Rate {
	if den < SmallCount || (num > 0 && num < SmallCount) {
		return Rate{Display: DisplaySmall}
	}
	p := math.Round(float64(num)*1000/float64(den)) / 10
	return Rate{Percent: &p, Display: strconv.FormatFloat(p, 'f', 1, 64) + "%"}
}

// Wait is a published waiting time in days: the median and 90th percentile
// over the cases that reached the step. The number of those cases is not
// published: with the rates it would be one more total to protect.
type Wait struct {
	Median  *float64 `json:"medianDays"`
	P90     *float64 `json:"p90Days"`
	Display string   `json:"display"`
}

// PublishWait summarises waits in days: median and 90th percentile by the
// nearest-rank method, to one decimal place; hidden over fewer than 8 cases.
func PublishWait(days []float64) Wait {
	if len(days) < SmallCount {
		return Wait{Display: DisplaySmall}
	}
	sorted := slices.Clone(days)
	slices.Sort(sorted)
	m, p := round1(nearestRank(sorted, 50)), round1(nearestRank(sorted, 90))
	return Wait{Median: &m, P90: &p, Display: strconv.FormatFloat(m, 'f', 1, 64) + " / " + strconv.FormatFloat(p, 'f', 1, 64) + " days"}
}

// nearestRank is the p-th percentile of sorted (ascending, non-empty): the
// value at rank ceil(p/100 × n).
func nearestRank(sorted []float64, p int) float64 {
	rank := (p*len(sorted) + 99) / 100
	return sorted[max(rank, 1)-1]
}

func round1(f float64) float64 { return math.Round(f*10) / 10 }
