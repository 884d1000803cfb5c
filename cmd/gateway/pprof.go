package main

import (
	"net/http"
	"net/http/pprof"
)

// pprofHandler serves the Go runtime profiles for debug.pprofListen, on a
// listener of its own (never the API's), so that an operator can profile a
// gateway under load (docs/performance.md). It is off unless configured,
// and the configuration accepts only a loopback address.
func pprofHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
