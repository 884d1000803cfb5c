// Command fhirbench compares the gateway's FHIR validator with fhircheck's
// Medplum-only mode on the same referral-like message Bundles: whole-process
// wall time and peak memory of each, side by side in one run, as ratios.
// Whole processes are compared because that is what an operator runs (a
// `validate` command or a CI step), start-up included.
//
//	go run ./conformance/cmd/fhirbench [-n 1000] [-shared ../shared] [-runs 3]
//
// It writes n Bundles (copies of the seed Bundles with distinct ids) to a
// temporary directory, writes a rules cache of the R4 and UK Core
// definitions there, then times, for each of our start-up modes (built-in
// rules, rules cache, definitions directory) and for fhircheck, one process
// that validates all n files, and prints the median of -runs runs. Both
// tools apply the UK Core profiles that the Bundles claim.
//
// `fhirbench validate [-rules FILE | -defs DIR,DIR] [-j N] FILE...` is the
// child process for our side; it prints "N passed, N failed".
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/student-mh-referrals/gateway/conformance"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "validate" {
		os.Exit(validate(os.Args[2:]))
	}
	if err := bench(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "fhirbench:", err)
		os.Exit(1)
	}
}

// validate is the child process: load, validate every file, summarise.
func validate(args []string) int {
	fs := flag.NewFlagSet("validate", flag.ExitOnError)
	rules := fs.String("rules", "", "rules file (cache) to load")
	defs := fs.String("defs", "", "comma-separated definition directories to load")
	jobs := fs.Int("j", runtime.GOMAXPROCS(0), "files validated in parallel")
	fs.Parse(args)
	var v *conformance.Validator
	var err error
	switch {
	case *rules != "":
		v, err = conformance.Open(*rules)
	case *defs != "":
		v, err = conformance.Load(strings.Split(*defs, ",")...)
	default:
		v = conformance.Builtin()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	files := fs.Args()
	var passed, failed atomic.Int64
	next := atomic.Int64{}
	var wg sync.WaitGroup
	for w := 0; w < max(*jobs, 1); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(files) {
					return
				}
				r, err := v.ValidateFile(files[i])
				if err != nil || !r.OK() {
					failed.Add(1)
					fmt.Fprintf(os.Stderr, "FAIL %s: %v%s", files[i], err, r.String())
					continue
				}
				passed.Add(1)
			}
		}()
	}
	wg.Wait()
	fmt.Printf("%d passed, %d failed\n", passed.Load(), failed.Load())
	if failed.Load() > 0 {
		return 1
	}
	return 0
}

type measurement struct {
	name   string
	wall   time.Duration
	rssKB  int64
	output string
}

func bench(args []string) error {
	fs := flag.NewFlagSet("fhirbench", flag.ExitOnError)
	n := fs.Int("n", 1000, "number of Bundles")
	shared := fs.String("shared", "../shared", "the shared folder (fhir/ definitions)")
	fhircheck := fs.String("fhircheck", "build/fhircheck/validate.mjs", "fhircheck's validate.mjs (npm ci done)")
	seeds := fs.String("seeds", "conformance/testdata/validator/cases/valid-*.json", "glob of seed Bundles")
	runs := fs.Int("runs", 3, "runs per process; the median is reported")
	keep := fs.Bool("keep", false, "keep the temporary directory")
	fs.Parse(args)

	seedFiles, err := filepath.Glob(*seeds)
	if err != nil || len(seedFiles) == 0 {
		return fmt.Errorf("no seed Bundles match %s (run from the repository root)", *seeds)
	}
	dir, err := os.MkdirTemp("", "fhirbench-")
	if err != nil {
		return err
	}
	if !*keep {
		defer os.RemoveAll(dir)
	}
	files, err := generate(dir, seedFiles, *n)
	if err != nil {
		return err
	}
	fhirDir := filepath.Join(*shared, "fhir")
	defDirs := filepath.Join(fhirDir, "r4") + "," + filepath.Join(fhirDir, "ukcore")
	full, err := conformance.Load(strings.Split(defDirs, ",")...)
	if err != nil {
		return err
	}
	rulesFile := filepath.Join(dir, "r4-ukcore.rules")
	var buf bytes.Buffer
	if err := full.WriteRules(&buf); err != nil {
		return err
	}
	if err := os.WriteFile(rulesFile, buf.Bytes(), 0o644); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	profiles, err := filepath.Glob(filepath.Join(fhirDir, "ukcore", "UKCore-*.json"))
	if err != nil || len(profiles) == 0 {
		return fmt.Errorf("no UK Core profiles in %s", fhirDir)
	}
	nodeArgs := []string{*fhircheck, "--summary", "--quiet", "--no-fhirpath", "--no-fhirjs"}
	for _, p := range profiles {
		nodeArgs = append(nodeArgs, "--profile", p)
	}
	type proc struct {
		name string
		cmd  []string
		env  []string
	}
	procs := []proc{
		{"gateway, built-in rules", append([]string{self, "validate"}, files...), nil},
		{"gateway, rules cache (R4+UK Core)", append([]string{self, "validate", "-rules", rulesFile}, files...), nil},
		{"gateway, definitions dir (R4+UK Core)", append([]string{self, "validate", "-defs", defDirs}, files...), nil},
		{"gateway, built-in rules, 1 thread", append([]string{self, "validate", "-j", "1"}, files...), nil},
		{"fhircheck --no-fhirpath --no-fhirjs, base R4 only (no --profile)", append(append([]string{"node"}, nodeArgs[:5]...), files...),
			[]string{"FHIRCHECK_FHIR_DIR=" + fhirDir}},
		{"fhircheck --no-fhirpath --no-fhirjs --profile UKCore-*", append(append([]string{"node"}, nodeArgs...), files...),
			[]string{"FHIRCHECK_FHIR_DIR=" + fhirDir}},
	}
	var results []measurement
	for _, p := range procs {
		var ms []measurement
		for r := 0; r < *runs; r++ {
			m, err := measure(p.name, p.cmd, p.env)
			if err != nil {
				return fmt.Errorf("%s: %w", p.name, err)
			}
			ms = append(ms, m)
		}
		sort.Slice(ms, func(i, j int) bool { return ms[i].wall < ms[j].wall })
		results = append(results, ms[len(ms)/2])
	}
	ref := results[len(results)-1]
	fmt.Printf("%d referral Bundles (%d seeds, %s), %d CPUs, median of %d runs\n\n",
		len(files), len(seedFiles), sizeOf(files), runtime.NumCPU(), *runs)
	fmt.Printf("| process | wall time | peak RSS | fhircheck time ÷ ours | fhircheck memory ÷ ours | verdicts |\n|---|---|---|---|---|---|\n")
	for _, m := range results {
		fmt.Printf("| %s | %.0f ms | %.1f MB | %.1f× | %.1f× | %s |\n", m.name, float64(m.wall.Microseconds())/1000,
			float64(m.rssKB)/1024, float64(ref.wall)/float64(m.wall), float64(ref.rssKB)/float64(m.rssKB), m.output)
	}
	return nil
}

// measure runs one process and returns its wall time, peak resident memory
// and the last line of its output. Peak memory comes from /usr/bin/time (its
// %M): the rusage of a child that this process starts directly would report
// this process's own peak, which Linux carries over an exec.
func measure(name string, argv, env []string) (measurement, error) {
	memFile, err := os.CreateTemp("", "fhirbench-mem-")
	if err != nil {
		return measurement{}, err
	}
	memFile.Close()
	defer os.Remove(memFile.Name())
	timeBin, timeErr := exec.LookPath("/usr/bin/time")
	if timeErr == nil {
		argv = append([]string{timeBin, "-o", memFile.Name(), "-f", "%M"}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err = cmd.Run()
	wall := time.Since(start)
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return measurement{}, err
	}
	var rss int64
	if timeErr == nil {
		data, _ := os.ReadFile(memFile.Name())
		fields := strings.Fields(string(data))
		if len(fields) == 0 {
			return measurement{}, fmt.Errorf("/usr/bin/time wrote no memory figure: %s", errb.String())
		}
		rss, _ = strconv.ParseInt(fields[len(fields)-1], 10, 64)
	} else if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rss = ru.Maxrss // an upper bound: see above
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	last := lines[len(lines)-1]
	if err != nil && !strings.Contains(last, "passed") {
		return measurement{}, fmt.Errorf("%v: %s", err, errb.String())
	}
	return measurement{name: name, wall: wall, rssKB: rss, output: last}, nil
}

// generate writes n Bundles, copies of the seeds with distinct Bundle ids.
func generate(dir string, seeds []string, n int) ([]string, error) {
	var docs []map[string]any
	for _, s := range seeds {
		data, err := os.ReadFile(s)
		if err != nil {
			return nil, err
		}
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			return nil, fmt.Errorf("%s: %w", s, err)
		}
		docs = append(docs, m)
	}
	files := make([]string, n)
	for i := 0; i < n; i++ {
		doc := docs[i%len(docs)]
		doc["id"] = fmt.Sprintf("bench-%05d", i)
		data, err := json.MarshalIndent(doc, "", "  ")
		if err != nil {
			return nil, err
		}
		files[i] = filepath.Join(dir, fmt.Sprintf("bundle-%05d.json", i))
		if err := os.WriteFile(files[i], data, 0o644); err != nil {
			return nil, err
		}
	}
	return files, nil
}

func sizeOf(files []string) string {
	var total int64
	for _, f := range files {
		if st, err := os.Stat(f); err == nil {
			total += st.Size()
		}
	}
	return fmt.Sprintf("%.1f MB", float64(total)/(1<<20))
}
