// Package graph proves providers/intune/intunemock against Microsoft's own
// Graph client: its tests drive the mock with msgraph-sdk-go (its
// deviceManagement request builders, models and OData errors, on
// msgraph-sdk-go-core's adapter, middleware, page iterator and batching) and
// azidentity, through every endpoint postured uses, and check that the SDK
// parses every answer. It is a separate module so the SDK, minutes to build,
// stays out of postured's go.mod; scripts/sdktest runs it.
package graph
