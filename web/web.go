// Package web is what the frontend's pages are made of: the templ components
// (package web/components), the stylesheet and the browser sign-in module
// (src/), and their esbuild bundle (static/dist/, built by build.mjs and
// committed). This package embeds the bundle and names its content-hashed
// files, so a deployment serves exactly the assets it was built with.
package web

import (
	"embed"
	"io/fs"
)

//go:embed static/dist
var dist embed.FS

// StaticPrefix is the URL path the assets are served under.
const StaticPrefix = "/static/"

// Static returns the built assets, by their content-hashed names. Their names
// change whenever their content does, so they can be cached for ever.
func Static() fs.FS {
	sub, err := fs.Sub(dist, "static/dist")
	if err != nil {
		// fs.Sub fails only for an invalid path, and this one is a constant.
		panic(err)
	}
	return sub
}

// ScriptURL is the path of the sign-in module.
func ScriptURL() string { return StaticPrefix + signInScript }

// StylesheetURL is the path of the stylesheet.
func StylesheetURL() string { return StaticPrefix + stylesheet }
