package gateway

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// ChainKeys is the keyring of the keyed decision chain, newest key first.
// Records are written under the first key and verified under whichever key
// they name, so that a rotation keeps older records checkable. The keys live
// outside the database: whoever can write the database but not read the key
// file cannot forge or rewrite a keyed record. Without keys records use the
// plain SHA-256 scheme.
type ChainKeys [][]byte

// KeyID names a chain key in the records it keyed: the first 8 bytes of its
// SHA-256, in hex. It reveals nothing usable about the key.
func KeyID(key []byte) string {
	s := sha256.Sum256(key)
	return hex.EncodeToString(s[:8])
}

// Current is the id of the key new records are written under; "" without
// keys.
func (ks ChainKeys) Current() string {
	if len(ks) == 0 {
		return ""
	}
	return KeyID(ks[0])
}

// Seal sets r's key id and hash under the newest key.
func (ks ChainKeys) Seal(r DecisionRecord) DecisionRecord {
	r.KeyID = ks.Current()
	r.Hash = ks.hash(r)
	return r
}

// rank orders key ids by age: 0 is the newest key, len(ks) the plain
// scheme (older than any key), -1 a key the ring does not hold.
func (ks ChainKeys) rank(id string) int {
	if id == "" {
		return len(ks)
	}
	return slices.IndexFunc(ks, func(k []byte) bool { return KeyID(k) == id })
}

// hash is the hash r must carry under the key it names ("" if unknown).
func (ks ChainKeys) hash(r DecisionRecord) string {
	switch i := ks.rank(r.KeyID); {
	case r.KeyID == "":
		return DecisionHash(r)
	case i < 0:
		return ""
	default:
		return KeyedDecisionHash(r, ks[i])
	}
}

// ChainHead is where a chain ends: its last record's seq and hash.
type ChainHead struct {
	Institution string `json:"institution"`
	Seq         int64  `json:"seq"`
	Hash        string `json:"hash"`
}

// Checkpoint is a signed statement of every chain's head at a time, kept in
// files outside the database (and copied off the host), so that cutting a
// chain back, rewriting it or deleting it shows against the last checkpoint
// even to someone who holds the chain key. Checkpoints are chained: each
// names the SHA-256 of the one before, so a checkpoint removed from the
// middle, or a forged sequence, shows too.
type Checkpoint struct {
	Number int64     `json:"number"` // 1, 2, …
	Time   time.Time `json:"time"`
	// Previous is the SHA-256 (hex) of the previous checkpoint's signed
	// bytes; empty for the first.
	Previous string `json:"previous,omitempty"`
	// PublicKey is the Ed25519 key (hex) that signed it. After a rotation
	// the first checkpoint under the new key names the old one in
	// PreviousPublicKey and carries the old key's signature too.
	PublicKey         string      `json:"publicKey"`
	PreviousPublicKey string      `json:"previousPublicKey,omitempty"`
	Chains            []ChainHead `json:"chains"`
	// Name and File are the file the checkpoint was read from, and Hash
	// the SHA-256 of its signed bytes.
	Name string `json:"-"`
	File []byte `json:"-"`
	Hash string `json:"-"`
}

// checkpointFile is a checkpoint as written: its exact signed bytes and the
// signatures over them.
type checkpointFile struct {
	Checkpoint json.RawMessage `json:"checkpoint"`
	Signature  string          `json:"signature"`
	// PreviousKeySignature is the previous key's endorsement of a new key.
	PreviousKeySignature string `json:"previousKeySignature,omitempty"`
}

// CheckpointDir is a directory of checkpoints and the public key that must
// have signed the newest one: the trust anchor, the public key of the
// configured signing key.
type CheckpointDir struct {
	Dir     string
	Trusted ed25519.PublicKey
}

// Load reads and checks every checkpoint in the directory, in order: each
// signature, the numbering from 1 without gaps, each link to the one
// before, every key change endorsed by the previous key, and the newest
// signed by the trusted key. A directory with no checkpoint gives none.
func (d CheckpointDir) Load() ([]Checkpoint, error) {
	names, err := filepath.Glob(filepath.Join(d.Dir, "checkpoint-*.json"))
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	var out []Checkpoint
	for i, name := range names {
		cp, err := readCheckpoint(name)
		if err != nil {
			return nil, err
		}
		var prev Checkpoint
		if i > 0 {
			prev = out[i-1]
		}
		switch {
		case cp.Number != int64(i+1):
			return nil, fmt.Errorf("%s is checkpoint %d where checkpoint %d belongs: one was removed or added", cp.Name, cp.Number, i+1)
		case cp.Previous != prev.Hash:
			return nil, fmt.Errorf("%s does not link to the checkpoint before it", cp.Name)
		case i > 0 && cp.PublicKey != prev.PublicKey && cp.PreviousPublicKey != prev.PublicKey:
			return nil, fmt.Errorf("%s is signed by a new key that the previous key did not endorse", cp.Name)
		}
		out = append(out, cp)
	}
	if n := len(out); n > 0 && d.Trusted != nil && out[n-1].PublicKey != hex.EncodeToString(d.Trusted) {
		return nil, fmt.Errorf("%s is signed by key %s, not by the trusted key %x", out[n-1].Name, out[n-1].PublicKey, []byte(d.Trusted))
	}
	return out, nil
}

// Latest is the newest checkpoint, after Load's checks; nil when there is
// none.
func (d CheckpointDir) Latest() (*Checkpoint, error) {
	cps, err := d.Load()
	if err != nil || len(cps) == 0 {
		return nil, err
	}
	return &cps[len(cps)-1], nil
}

// ContainedIn checks that every checkpoint of d (a copy kept off the host)
// is still in dir unchanged: a checkpoint deleted there, the newest
// included, or replaced, shows against the copy.
func (d CheckpointDir) ContainedIn(dir string) error {
	copies, err := d.Load()
	if err != nil {
		return err
	}
	host, err := CheckpointDir{Dir: dir}.Load()
	for i, c := range copies {
		if err != nil || i >= len(host) || host[i].Hash != c.Hash {
			return fmt.Errorf("checkpoint %d of the copy is missing from %s, or differs there", c.Number, dir)
		}
	}
	return nil
}

// readCheckpoint reads one file and checks its signatures.
func readCheckpoint(name string) (Checkpoint, error) {
	var cp Checkpoint
	b, err := os.ReadFile(name)
	if err != nil {
		return cp, err
	}
	var f checkpointFile
	bad := func(why string) (Checkpoint, error) {
		return cp, fmt.Errorf("%s: %s", filepath.Base(name), why)
	}
	if json.Unmarshal(b, &f) != nil || json.Unmarshal(f.Checkpoint, &cp) != nil {
		return bad("not a checkpoint file")
	}
	if !signedBy(cp.PublicKey, f.Checkpoint, f.Signature) {
		return bad("the signature does not match")
	}
	if cp.PreviousPublicKey != "" && !signedBy(cp.PreviousPublicKey, f.Checkpoint, f.PreviousKeySignature) {
		return bad("the previous key's endorsement does not match")
	}
	sum := sha256.Sum256(f.Checkpoint)
	cp.Name, cp.File, cp.Hash = filepath.Base(name), b, hex.EncodeToString(sum[:])
	return cp, nil
}

// signedBy reports whether sig (base64) is the signature of msg by the
// Ed25519 public key pub (hex).
func signedBy(pub string, msg []byte, sig string) bool {
	key, kerr := hex.DecodeString(pub)
	s, serr := base64.StdEncoding.DecodeString(sig)
	return kerr == nil && serr == nil && len(key) == ed25519.PublicKeySize && ed25519.Verify(key, msg, s)
}

// WriteCheckpoint writes the next checkpoint of every chain in log to dir,
// signed by keys[0] (keys: the signing keys, newest first; after a
// rotation the previous key must follow, to endorse the new one). When no
// head moved since the newest checkpoint nothing is written and it is
// returned. It refuses to extend a sequence that does not pass Load.
func WriteCheckpoint(ctx context.Context, log AuditTrail, dir string, keys []ed25519.PrivateKey, now time.Time) (*Checkpoint, error) {
	if len(keys) == 0 {
		return nil, errors.New("no checkpoint signing key")
	}
	pub := hex.EncodeToString(keys[0].Public().(ed25519.PublicKey))
	cps, err := CheckpointDir{Dir: dir}.Load()
	if err != nil {
		return nil, fmt.Errorf("checkpoints in %s: %w", dir, err)
	}
	heads, err := log.Chains(ctx)
	if err != nil {
		return nil, err
	}
	cp := Checkpoint{Number: 1, Time: now.UTC().Truncate(time.Second), PublicKey: pub, Chains: heads}
	var endorse ed25519.PrivateKey
	if n := len(cps); n > 0 {
		last := cps[n-1]
		if last.PublicKey == pub && slices.Equal(last.Chains, heads) {
			return &last, nil
		}
		cp.Number, cp.Previous = last.Number+1, last.Hash
		if last.PublicKey != pub {
			i := slices.IndexFunc(keys, func(k ed25519.PrivateKey) bool {
				return hex.EncodeToString(k.Public().(ed25519.PublicKey)) == last.PublicKey
			})
			if i < 0 {
				return nil, fmt.Errorf("checkpoint %d is signed by key %s: to rotate, keep that key after the new one in the signing key file until the next checkpoint is written", last.Number, last.PublicKey)
			}
			cp.PreviousPublicKey, endorse = last.PublicKey, keys[i]
		}
	}
	body, err := json.Marshal(cp)
	if err != nil {
		return nil, err
	}
	f := checkpointFile{Checkpoint: body, Signature: base64.StdEncoding.EncodeToString(ed25519.Sign(keys[0], body))}
	if endorse != nil {
		f.PreviousKeySignature = base64.StdEncoding.EncodeToString(ed25519.Sign(endorse, body))
	}
	// Compact, without HTML escaping: the signed bytes go into the file
	// exactly as they were signed.
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(f); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	// Written aside, then linked under its name, which fails if another
	// gateway wrote that number first: a checkpoint file is never replaced.
	tmp, err := os.CreateTemp(dir, ".checkpoint-*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(buf.Bytes())
	name := filepath.Join(dir, fmt.Sprintf("checkpoint-%08d.json", cp.Number))
	if err = errors.Join(err, tmp.Sync(), tmp.Close()); err == nil {
		err = os.Link(tmp.Name(), name)
	}
	if err != nil {
		return nil, err
	}
	out, err := readCheckpoint(name)
	return &out, err
}

// Check holds a verified chain v to the checkpoint: a chain the checkpoint
// lists must still exist, reach the checkpointed record, and hold at that
// record the hash that was signed. Records written since the checkpoint are
// not covered; the keyed chain is what protects them. A nil checkpoint
// checks nothing.
func (cp *Checkpoint) Check(ctx context.Context, log AuditTrail, v *ChainVerification) error {
	if cp == nil || !v.OK {
		return nil
	}
	i := slices.IndexFunc(cp.Chains, func(h ChainHead) bool { return h.Institution == v.Institution })
	if i < 0 {
		return nil
	}
	h := cp.Chains[i]
	v.Checkpoint = h.Seq
	fail := func(seq int64, p ChainProblem, format string, args ...any) {
		v.OK, v.BadSeq, v.Problem = false, seq, p
		v.Detail = fmt.Sprintf(format, args...) + fmt.Sprintf(" (checkpoint %d of %s)", cp.Number, cp.Time.Format(time.RFC3339))
	}
	switch {
	case h.Seq == 0:
	case v.HeadSeq == 0:
		fail(1, ChainMissing, "the chain is missing: it had %d records", h.Seq)
	case v.HeadSeq < h.Seq:
		fail(v.HeadSeq+1, ChainRemoved, "the chain ends at record %d but had %d records", v.HeadSeq, h.Seq)
	default:
		recs, err := log.Decisions(ctx, v.Institution, h.Seq-1, 1)
		if err != nil {
			return err
		}
		if len(recs) != 1 || recs[0].Hash != h.Hash {
			fail(h.Seq, ChainAltered, "record %d is not the record that was signed", h.Seq)
		}
	}
	return nil
}

// ChainNames is every chain to verify, in order: those log holds (records
// or a head), those cp lists (so that a chain deleted with its head is
// still reported) and extra (those the configuration names).
func ChainNames(ctx context.Context, log AuditTrail, cp *Checkpoint, extra ...string) ([]string, error) {
	heads, err := log.Chains(ctx)
	if err != nil {
		return nil, err
	}
	out := slices.Clone(extra)
	for _, h := range heads {
		out = append(out, h.Institution)
	}
	if cp != nil {
		for _, h := range cp.Chains {
			out = append(out, h.Institution)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}
