package main

import (
	"log/slog"
	"net/http"

	"github.com/evidenceledger/evidence/encounter"
	"github.com/evidenceledger/evidence/web"
)

// mountWeb serves the clinician's page, its assets and the audio route
// (GET /api/v1/encounters/{id}/audio, with HTTP Range) on mux. The audio
// route's caller is the identity the Guard established (httpCaller): a
// bearer token, a client certificate, or the page's session cookie.
func mountWeb(mux interface {
	HandleFunc(string, func(http.ResponseWriter, *http.Request))
}, svc *encounter.Service, logger *slog.Logger) {
	web.New(web.Options{Audio: svc, Caller: httpCaller, Logger: logger.With("component", "web")}).Register(mux)
}
