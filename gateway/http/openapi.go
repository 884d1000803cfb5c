package http

import (
	_ "embed"
	"net/http"
)

// OpenAPI is the description of the API, served at /v1/openapi.json. A test
// checks it against the router both ways: every route documented, every
// documented route served.
//
//go:embed openapi.json
var OpenAPI []byte

func handleOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/vnd.oai.openapi+json")
	_, _ = w.Write(OpenAPI)
}
