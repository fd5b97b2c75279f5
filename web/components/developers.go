package components

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Developers is the developers' page: the user's apps with their usage, the
// form to create one, and, once, the key of the app just created.
type Developers struct {
	Shell Shell
	Email string
	// CSRF is the token every form on the page carries, so the page works
	// without JavaScript.
	CSRF     string
	Products []ProductChoice
	Apps     []DeveloperApp
	// NewKey is set only on the answer to creating an app: the key is shown
	// this once and never again.
	NewKey *NewKey
	// Form is the create form as the user filled it, when it was refused.
	Form NewAppForm
	// Notice says what the last action did ("… was revoked").
	Notice string
	// Problem explains a failure to load or change something.
	Problem *Problem
}

// ProductChoice is an API product offered in the create form.
type ProductChoice struct {
	ID, Name, Description string
	PerMinute, PerDay     int64
}

// NewAppForm is what the create form shows: empty, or the user's input
// with what was wrong with it.
type NewAppForm struct {
	Name     string
	Products []string
	Error    string
}

// NewKey is the key of an app just created.
type NewKey struct {
	AppID, AppName string
	Key            string
}

// DeveloperApp is one app with its usage.
type DeveloperApp struct {
	ID       string
	Name     string
	Products []string // product names, for reading
	Created  time.Time
	Revoked  *time.Time
	// Usage is nil when it could not be fetched; UsageProblem then says so.
	Usage        *AppUsage
	UsageProblem string
}

// AppUsage is an app's requests over the last hour and day and what is left
// of its quotas.
type AppUsage struct {
	Hour  UsageSeries
	Day   UsageSeries
	Quota []QuotaLeft
}

// UsageSeries is a window cut into equal buckets, oldest first.
type UsageSeries struct {
	// Label names the window ("last hour") and Step a bucket ("minute").
	Label, Step string
	Buckets     []UsageBucket
}

// UsageBucket counts the requests of one bucket: allowed, and refused (an
// unknown or revoked key, a path the products do not cover, over quota).
type UsageBucket struct {
	Start            time.Time
	Allowed, Refused int64
}

// QuotaLeft is one product's quota and what is left of it.
type QuotaLeft struct {
	Product                       string
	PerMinute, PerDay             int64
	RemainingMinute, RemainingDay int64
}

// chartWidth and chartHeight are the usage chart's viewBox; it stretches to
// the card's width, so a bucket's bar is a share of it, not a pixel size.
const chartWidth, chartHeight = 600.0, 120.0

// bar is one bucket drawn: the allowed part from the baseline up, the
// refused part stacked on it.
type bar struct {
	X, W                   string
	AllowedY, AllowedH     string
	RefusedY, RefusedH     string
	HasAllowed, HasRefused bool
}

// bars lays the series out in the viewBox, scaled to its busiest bucket.
func (s UsageSeries) bars() []bar {
	peak := max(s.peak().Allowed+s.peak().Refused, 1)
	n := float64(max(len(s.Buckets), 1))
	slot := chartWidth / n
	gap := min(slot*0.2, 2)
	out := make([]bar, 0, len(s.Buckets))
	for i, b := range s.Buckets {
		ah := chartHeight * float64(b.Allowed) / float64(peak)
		rh := chartHeight * float64(b.Refused) / float64(peak)
		out = append(out, bar{
			X: num(float64(i) * slot), W: num(slot - gap),
			AllowedY: num(chartHeight - ah), AllowedH: num(ah),
			RefusedY: num(chartHeight - ah - rh), RefusedH: num(rh),
			HasAllowed: b.Allowed > 0, HasRefused: b.Refused > 0,
		})
	}
	return out
}

func num(f float64) string { return strconv.FormatFloat(f, 'f', 2, 64) }

// peak is the busiest bucket (the first of equals); zero for an empty series.
func (s UsageSeries) peak() UsageBucket {
	var p UsageBucket
	for _, b := range s.Buckets {
		if b.Allowed+b.Refused > p.Allowed+p.Refused {
			p = b
		}
	}
	return p
}

// totals sums the series.
func (s UsageSeries) totals() (allowed, refused int64) {
	for _, b := range s.Buckets {
		allowed += b.Allowed
		refused += b.Refused
	}
	return allowed, refused
}

// Summary is the chart in one sentence: its text alternative, also shown.
func (s UsageSeries) Summary() string {
	allowed, refused := s.totals()
	if allowed+refused == 0 {
		return "No requests in the " + s.Label + "."
	}
	p := s.peak()
	return fmt.Sprintf("%s in the %s: %s allowed, %s refused; the busiest %s (from %s) had %s.",
		plural(allowed+refused, "request"), s.Label, group(allowed), group(refused),
		s.Step, clock(p.Start), group(p.Allowed+p.Refused))
}

// busy is the buckets that saw requests, for the chart's table.
func (s UsageSeries) busy() []UsageBucket {
	var out []UsageBucket
	for _, b := range s.Buckets {
		if b.Allowed+b.Refused > 0 {
			out = append(out, b)
		}
	}
	return out
}

func clock(t time.Time) string { return t.UTC().Format("15:04") + " UTC" }

func day(t time.Time) string { return t.UTC().Format("2 Jan 2006, 15:04") + " UTC" }

func plural(n int64, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return group(n) + " " + what + "s"
}

// group writes n with thousands separators, as people read quotas.
func group(n int64) string {
	s := strconv.FormatInt(n, 10)
	if n < 0 {
		return "-" + group(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// capitalize upper-cases the first letter of a word ("minute" → "Minute").
func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
