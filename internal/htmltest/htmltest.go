// Package htmltest reads HTML the way tests of pages need: parse a body, find
// an element, read an attribute or the visible text. It is for tests only.
package htmltest

import (
	"strings"
	"testing"

	"golang.org/x/net/html"
)

// Parse parses s as an HTML document, failing t if it cannot.
func Parse(t testing.TB, s string) *html.Node {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(s))
	if err != nil {
		t.Fatalf("parsing HTML: %v", err)
	}
	return doc
}

// Find returns the first element under n, n included, in document order
// for which match is true, or nil.
func Find(n *html.Node, match func(*html.Node) bool) *html.Node {
	if n.Type == html.ElementNode && match(n) {
		return n
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		if m := Find(c, match); m != nil {
			return m
		}
	}
	return nil
}

// ByID returns the element with the given id, or nil.
func ByID(doc *html.Node, id string) *html.Node {
	return Find(doc, func(n *html.Node) bool { return Attr(n, "id") == id })
}

// Attr returns the value of n's attribute key: "" when it is absent or n is nil.
func Attr(n *html.Node, key string) string {
	if n == nil {
		return ""
	}
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

// Has reports whether n carries the attribute key, even with an empty value
// (boolean attributes such as hidden or required).
func Has(n *html.Node, key string) bool {
	if n == nil {
		return false
	}
	for _, a := range n.Attr {
		if a.Key == key {
			return true
		}
	}
	return false
}

// Text is the text under n with runs of white space collapsed, as a reader
// sees it; "" for nil.
func Text(n *html.Node) string {
	if n == nil {
		return ""
	}
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return strings.Join(strings.Fields(b.String()), " ")
}
