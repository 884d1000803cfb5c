// Package policies holds the gateway's sharing rules as Rego, the only place
// where a sharing rule may live (docs: sharing-principles.md), and embeds
// them so that the binary carries the policy set it was tested with.
//
// The Rego files are grouped by theme so that an information-governance lead
// can find a principle by its id: consent.rego (C-01..C-04), override.rego
// (O-01..O-04, L-01, L-02), capacity_age.rego (K-01, K-02, A-01),
// content.rego (M-01, X-01, X-02, P-01, E-01), record.rego (R-01, T-01,
// S-01, N-01) and decision.rego, which assembles data.referral.decision and
// documents its input. Each *_test.rego beside them is that theme's tests.
package policies

import "embed"

// FS is the embedded policy set: every .rego file of this directory, tests
// included (the OPA adapter leaves *_test.rego out of the set it compiles and
// hashes, and runs them before it lets a reloaded set serve). The gateway
// uses it unless a policy directory is configured. The lists an IG lead
// edits (registers, roles, Schedule 1 paragraphs, risk patterns) are Rego
// data in lists.rego, so that the same files load here and in `opa test`; a
// data.json or data.yaml added here needs its name in the embed pattern
// below.
//
//go:embed *.rego
var FS embed.FS
