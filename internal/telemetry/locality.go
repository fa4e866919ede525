package telemetry

import "go.opentelemetry.io/otel/attribute"

// AttrLocality is the attempt metrics' attribute that says whether an
// attempt stayed in the client's zone: "local" or "remote". Attempts of a
// pool without zone-aware routing do not have it.
const AttrLocality = "grpcpool.locality"

// Locality is an attempt's grpcpool.locality.
type Locality uint8

// The values of grpcpool.locality.
const (
	LocalityNone Locality = iota // zone-aware routing off: no attribute
	Local
	Remote
	numLocalities
)

var localityNames = [numLocalities]string{"", "local", "remote"}

// String returns "local", "remote", or "" for LocalityNone.
func (l Locality) String() string { return localityNames[localityIndex(l)] }

func localityIndex(l Locality) Locality {
	if l >= numLocalities {
		return LocalityNone
	}
	return l
}

// attrs is l as attributes: none for LocalityNone.
func (l Locality) attrs() []attribute.KeyValue {
	if l == LocalityNone {
		return nil
	}
	return []attribute.KeyValue{attribute.String(AttrLocality, l.String())}
}

// localityOpts caches the options of one histogram sample per locality
// and status code.
type localityOpts [numLocalities]codeOpts
