package identity

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"

	"github.com/labstack/echo/v4"
)

// projectConfig is what GET/PATCH /v2/projects/{p}/config serve (the Admin
// SDK's GetProjectConfig and UpdateProjectConfig). Only the multi-factor
// settings (mfa) are stored, as given, in memory; the settings the emulator
// enforces follow its Config and are reported, never changed by a PATCH.
type projectConfig struct {
	mu  sync.Mutex
	mfa json.RawMessage
}

func (e *Emulator) configBody() map[string]any {
	e.config.mu.Lock()
	defer e.config.mu.Unlock()
	body := map[string]any{
		"name": "projects/" + e.project + "/config",
		"signIn": map[string]any{
			"email":                map[string]any{"enabled": true, "passwordRequired": true},
			"allowDuplicateEmails": false,
		},
		"emailPrivacyConfig": map[string]any{"enableImprovedEmailPrivacy": !e.reveal},
	}
	if e.config.mfa != nil {
		body["mfa"] = e.config.mfa
	}
	return body
}

func (e *Emulator) getConfig(c echo.Context) error {
	return c.JSON(http.StatusOK, e.configBody())
}

// updateConfig applies the fields its updateMask names; a path outside
// mfa is refused by name, as is a mask that is missing.
func (e *Emulator) updateConfig(c echo.Context) error {
	var req map[string]json.RawMessage
	if err := decode(c, &req); err != nil {
		return err
	}
	mask := c.QueryParam("updateMask")
	if mask == "" {
		return badRequest("INVALID_ARGUMENT : updateMask is required")
	}
	setMFA := false
	for _, path := range strings.Split(mask, ",") {
		if path != "mfa" && !strings.HasPrefix(path, "mfa.") {
			return badRequest("INVALID_CONFIG : " + path + " is not configurable in this emulator (it follows identity.Config)")
		}
		setMFA = true
	}
	if setMFA {
		mfa := req["mfa"]
		var obj map[string]any
		if len(mfa) > 0 && json.Unmarshal(mfa, &obj) != nil {
			return badRequest("INVALID_CONFIG : mfa must be an object")
		}
		e.config.mu.Lock()
		if len(mfa) == 0 || string(mfa) == "null" {
			e.config.mfa = nil
		} else {
			e.config.mfa = mfa
		}
		e.config.mu.Unlock()
	}
	return c.JSON(http.StatusOK, e.configBody())
}
