package components

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/acme/cloudrun-istio-gke/internal/htmltest"
)

// hourOf is an hour of usage in minute buckets ending at end, with counts
// at the given minutes ago: allowed and refused.
func hourOf(end time.Time, at map[int][2]int64) UsageSeries {
	s := UsageSeries{Label: "last hour", Step: "minute", Buckets: make([]UsageBucket, 60)}
	for i := range s.Buckets {
		s.Buckets[i].Start = end.Add(time.Duration(i-60) * time.Minute)
		if c, ok := at[60-i]; ok {
			s.Buckets[i].Allowed, s.Buckets[i].Refused = c[0], c[1]
		}
	}
	return s
}

func dayOf(end time.Time) UsageSeries {
	s := UsageSeries{Label: "last 24 hours", Step: "hour", Buckets: make([]UsageBucket, 24)}
	for i := range s.Buckets {
		s.Buckets[i].Start = end.Add(time.Duration(i-24) * time.Hour)
	}
	return s
}

func elements(n *html.Node, match func(*html.Node) bool) []*html.Node {
	var out []*html.Node
	for c := range n.Descendants() {
		if c.Type == html.ElementNode && match(c) {
			out = append(out, c)
		}
	}
	return out
}

func byClass(class string) func(*html.Node) bool {
	return func(n *html.Node) bool { return htmltest.Attr(n, "class") == class }
}

func TestDevelopersPage(t *testing.T) {
	end := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	created := end.Add(-3 * time.Hour)
	revoked := end.Add(-time.Hour)
	products := []ProductChoice{
		{ID: "secure-message", Name: "Secure message", PerMinute: 10, PerDay: 1000},
		{ID: "reports", Name: "Reports", Description: "Read-only reports.", PerMinute: 60, PerDay: 10000},
	}
	busy := &AppUsage{
		Hour:  hourOf(end, map[int][2]int64{2: {7, 0}, 1: {10, 3}}),
		Day:   dayOf(end),
		Quota: []QuotaLeft{{Product: "Secure message", PerMinute: 10, PerDay: 1000, RemainingMinute: 0, RemainingDay: 980}},
	}
	busy.Day.Buckets[23] = UsageBucket{Start: busy.Day.Buckets[23].Start, Allowed: 17, Refused: 3}
	base := Developers{Shell: Shell{Title: "Developers"}, Email: "ada@example.com", CSRF: "tok", Products: products}

	t.Run("with no apps, the page says so and offers the products to pick", func(t *testing.T) {
		doc := render(t, DevelopersPage(base))
		if htmltest.ByID(doc, "no-apps") == nil {
			t.Errorf("want the no-apps message")
		}
		boxes := elements(doc, func(n *html.Node) bool { return htmltest.Attr(n, "name") == "product" })
		if len(boxes) != 2 || htmltest.Attr(boxes[1], "value") != "reports" || htmltest.Has(boxes[0], "checked") {
			t.Errorf("want two unchecked product checkboxes in catalog order, got %d", len(boxes))
		}
		if !strings.Contains(htmltest.Text(htmltest.ByID(doc, "create-app")), "Quota: 60 a minute, 10,000 a day.") {
			t.Errorf("the form does not state the reports quota: %q", htmltest.Text(htmltest.ByID(doc, "create-app")))
		}
		for _, f := range elements(doc, func(n *html.Node) bool { return n.Data == "form" }) {
			if htmltest.Attr(f, "method") != "post" {
				t.Errorf("form %s: method %q, want post", htmltest.Attr(f, "action"), htmltest.Attr(f, "method"))
			}
			csrf := htmltest.Find(f, func(n *html.Node) bool { return htmltest.Attr(n, "name") == "csrf" })
			if htmltest.Attr(csrf, "value") != "tok" {
				t.Errorf("form %s carries no CSRF token", htmltest.Attr(f, "action"))
			}
		}
		if htmltest.ByID(doc, "new-key") != nil {
			t.Errorf("a key notice without a new key")
		}
	})

	t.Run("an active app shows both charts with their text alternatives and the quota left", func(t *testing.T) {
		d := base
		d.Apps = []DeveloperApp{{ID: "app_1", Name: "Partner portal", Products: []string{"Secure message"}, Created: created, Usage: busy}}
		doc := render(t, DevelopersPage(d))
		card := htmltest.ByID(doc, "app-app_1")
		svgs := elements(card, func(n *html.Node) bool { return n.Data == "svg" })
		if len(svgs) != 2 {
			t.Fatalf("%d charts, want 2", len(svgs))
		}
		hour := svgs[0]
		if htmltest.Attr(hour, "role") != "img" || htmltest.Attr(hour, "aria-labelledby") != "app-app_1-hour-title app-app_1-hour-desc" {
			t.Errorf("hour chart: role %q labelledby %q, want img labelled by its title and desc", htmltest.Attr(hour, "role"), htmltest.Attr(hour, "aria-labelledby"))
		}
		const want = "20 requests in the last hour: 17 allowed, 3 refused; the busiest minute (from 08:59 UTC) had 13."
		if got := htmltest.Text(htmltest.ByID(doc, "app-app_1-hour-desc")); got != want {
			t.Errorf("hour chart description:\n got %q\nwant %q", got, want)
		}
		if !strings.Contains(htmltest.Text(card), want) {
			t.Errorf("the description is not also shown as text")
		}
		// The busiest minute's bar is full height: allowed 10, refused 3 on top.
		allowed := elements(hour, byClass("bar-allowed"))
		refused := elements(hour, byClass("bar-refused"))
		if len(allowed) != 2 || len(refused) != 1 {
			t.Fatalf("bars: %d allowed, %d refused; want 2 and 1", len(allowed), len(refused))
		}
		if y := htmltest.Attr(refused[0], "y"); y != "0.00" {
			t.Errorf("the busiest bar's top is at y=%s, want 0.00 (the chart's full height)", y)
		}
		if h := htmltest.Attr(allowed[1], "height"); h != "92.31" { // 120 * 10/13
			t.Errorf("allowed part of the busiest bar: height %s, want 92.31", h)
		}
		rows := elements(card, func(n *html.Node) bool { return n.Data == "tr" })
		if len(rows) < 3 {
			t.Errorf("the numbers table has %d rows, want a header and the two busy minutes", len(rows))
		}
		quota := htmltest.Text(htmltest.Find(card, byClass("quota")))
		for _, w := range []string{"Secure message", "0 of 10", "980 of 1,000"} {
			if !strings.Contains(quota, w) {
				t.Errorf("quota table %q: want %q", quota, w)
			}
		}
		form := htmltest.Find(card, func(n *html.Node) bool { return n.Data == "form" })
		if htmltest.Attr(form, "action") != "/developers/apps/app_1/revoke" {
			t.Errorf("revoke form action %q", htmltest.Attr(form, "action"))
		}
	})

	t.Run("an app without traffic says so instead of drawing bars", func(t *testing.T) {
		d := base
		d.Apps = []DeveloperApp{{ID: "app_2", Name: "Quiet", Created: created, Usage: &AppUsage{Hour: hourOf(end, nil), Day: dayOf(end)}}}
		doc := render(t, DevelopersPage(d))
		card := htmltest.ByID(doc, "app-app_2")
		if n := len(elements(card, byClass("bar-allowed"))); n != 0 {
			t.Errorf("%d bars for an app without requests", n)
		}
		if !strings.Contains(htmltest.Text(card), "No requests in the last hour.") {
			t.Errorf("card %q: want 'No requests in the last hour.'", htmltest.Text(card))
		}
	})

	t.Run("a revoked app is marked, keeps its usage, and offers neither revoke nor quota", func(t *testing.T) {
		d := base
		d.Apps = []DeveloperApp{{ID: "app_3", Name: "Old bot", Created: created, Revoked: &revoked, Usage: busy}}
		d.Notice = "The key of Old bot is revoked: requests with it are refused from now on."
		doc := render(t, DevelopersPage(d))
		card := htmltest.ByID(doc, "app-app_3")
		if got := htmltest.Text(htmltest.Find(card, byClass("status status-revoked"))); got != "Revoked" {
			t.Errorf("status %q, want Revoked", got)
		}
		if !strings.Contains(htmltest.Text(card), "revoked 3 Dec 2026, 08:00 UTC") {
			t.Errorf("card %q: want when it was revoked", htmltest.Text(card))
		}
		if htmltest.Find(card, func(n *html.Node) bool { return n.Data == "form" }) != nil {
			t.Errorf("a revoked app offers to revoke it again")
		}
		if htmltest.Find(card, byClass("quota")) != nil {
			t.Errorf("a revoked app shows quota left it cannot use")
		}
		if len(elements(card, func(n *html.Node) bool { return n.Data == "svg" })) != 2 {
			t.Errorf("a revoked app's recent usage is not shown")
		}
		notice := htmltest.Find(doc, byClass("notice notice-ok"))
		if htmltest.Attr(notice, "role") != "status" || !strings.Contains(htmltest.Text(notice), "Old bot is revoked") {
			t.Errorf("want the revocation notice as a status")
		}
	})

	t.Run("a key just created is shown once, as selectable text with a copy button for the module", func(t *testing.T) {
		d := base
		d.NewKey = &NewKey{AppID: "app_4", AppName: "Partner portal", Key: "ak_secret"}
		doc := render(t, DevelopersPage(d))
		key := htmltest.ByID(doc, "new-key-value")
		if htmltest.Text(key) != "ak_secret" || key.Data != "code" {
			t.Errorf("key element <%s> %q, want <code> with the key", key.Data, htmltest.Text(key))
		}
		button := htmltest.Find(htmltest.ByID(doc, "new-key"), func(n *html.Node) bool { return n.Data == "button" })
		if htmltest.Attr(button, "data-copy") != "new-key-value" || !htmltest.Has(button, "hidden") || htmltest.Attr(button, "type") != "button" {
			t.Errorf("copy button: want type=button, data-copy=new-key-value, hidden until the module shows it")
		}
		if !strings.Contains(htmltest.Text(htmltest.ByID(doc, "new-key")), "shown only this once") {
			t.Errorf("the notice does not say the key is shown once")
		}
	})

	t.Run("a refused form keeps what was typed and says why", func(t *testing.T) {
		d := base
		d.Form = NewAppForm{Name: "Reports <bot>", Products: []string{"reports"}, Error: "Pick products from the list."}
		doc := render(t, DevelopersPage(d))
		if got := htmltest.Attr(htmltest.ByID(doc, "app-name"), "value"); got != "Reports <bot>" {
			t.Errorf("name field %q, want what was typed", got)
		}
		box := htmltest.Find(doc, func(n *html.Node) bool { return htmltest.Attr(n, "value") == "reports" })
		if !htmltest.Has(box, "checked") {
			t.Errorf("the product ticked is no longer ticked")
		}
		if htmltest.Attr(htmltest.ByID(doc, "create-app-error"), "role") != "alert" {
			t.Errorf("want the form's error as an alert")
		}
	})
}

func TestGroupWritesThousands(t *testing.T) {
	for in, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -1000: "-1,000"} {
		if got := group(in); got != want {
			t.Errorf("group(%d) = %q, want %q", in, got, want)
		}
	}
}

// BenchmarkDevelopersPage renders the page of a user with the most apps one
// may have (50), each with a day of usage: the rendering cost per view.
func BenchmarkDevelopersPage(b *testing.B) {
	end := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	u := &AppUsage{Hour: hourOf(end, map[int][2]int64{1: {5, 1}, 30: {9, 0}}), Day: dayOf(end),
		Quota: []QuotaLeft{{Product: "Secure message", PerMinute: 10, PerDay: 1000, RemainingMinute: 4, RemainingDay: 900}}}
	d := Developers{Shell: Shell{Title: "Developers"}, Email: "ada@example.com", CSRF: "tok"}
	for i := range 50 {
		d.Apps = append(d.Apps, DeveloperApp{ID: fmt.Sprintf("app_%02d", i), Name: "App", Created: end, Usage: u})
	}
	var buf bytes.Buffer
	for b.Loop() {
		buf.Reset()
		if err := DevelopersPage(d).Render(context.Background(), &buf); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(buf.Len()), "bytes/page")
}
