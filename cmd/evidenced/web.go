package main

import (
	"log/slog"
	"net/http"

	"github.com/evidenceledger/evidence/encounter"
	"github.com/evidenceledger/evidence/web"
)

// mountWeb serves the clinician's page, its assets and the audio route
// (GET /api/v1/encounters/{id}/audio, with HTTP Range) on mux. The audio
// route takes the caller from the development identity headers until token
// authentication replaces web.HeaderCaller.
func mountWeb(mux *http.ServeMux, svc *encounter.Service, logger *slog.Logger) {
	web.New(web.Options{Audio: svc, Logger: logger.With("component", "web")}).Register(mux)
}
