module github.com/flawless-go/flawless/e2e

go 1.26.0

replace github.com/flawless-go/flawless => ../

require (
	github.com/chromedp/chromedp v0.22.1
	github.com/flawless-go/flawless v0.0.0-00010101000000-000000000000
)

require (
	github.com/chromedp/cdproto v0.159.0 // indirect
	github.com/go-json-experiment/json v0.0.0-20260213210345-44df1a37e875 // indirect
)
