package wire

import (
	"encoding/json"
	"fmt"

	"github.com/klauspost/compress/s2"
)

// ContentType is the media type of an encoded message: JSON compressed
// with S2 (a fast Snappy-compatible compression); rows of text shrink to a
// third or less, so a batch of thousands of rows fits a bus message.
const ContentType = "application/vnd.govshare.exchange+s2"

// MaxMessage is the largest encoded message the exchange sends: below the
// bus's default limit of 1 MiB, with room for headers.
const MaxMessage = 1000 * 1024

// Encode turns v into a message body.
func Encode(v any) ([]byte, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return s2.Encode(nil, raw), nil
}

// Decode reads a message body into v.
func Decode(b []byte, v any) error {
	raw, err := s2.Decode(nil, b)
	if err != nil {
		return fmt.Errorf("exchange message: %w", err)
	}
	return json.Unmarshal(raw, v)
}
