module github.com/postured/postured

go 1.26.8

require (
	github.com/hashicorp/go-retryablehttp v0.7.8
	go.yaml.in/yaml/v3 v3.0.6
	golang.org/x/oauth2 v0.37.0
	golang.org/x/sync v0.24.0
	golang.org/x/time v0.16.0
)

require (
	github.com/hashicorp/go-cleanhttp v0.5.2 // indirect
	golang.org/x/sys v0.48.0 // indirect
)
