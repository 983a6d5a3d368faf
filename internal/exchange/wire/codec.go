package wire

import (
	"encoding/binary"
	"encoding/json"
	"errors"
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
	switch m := v.(type) {
	case *Delivery:
		return decodeWithRows(raw, m, &m.Rows)
	case *Batch:
		return decodeWithRows(raw, m, &m.Rows)
	}
	return json.Unmarshal(raw, v)
}

// ContentTypeDeliveries is GET PathDeliveries' answer to a node that asks
// for it (Accept): the deliveries as the bus stores them, each an encoded
// Delivery (Encode) after its position in the subscription's stream and
// its length (uvarints), with Deliveries.Active in HeaderActive. The
// center passes stored deliveries on without reading them; JSON
// (Deliveries) remains the answer to nodes that do not ask.
const ContentTypeDeliveries = "application/vnd.govshare.deliveries"

// AppendDelivery appends a stored delivery at position seq to a
// ContentTypeDeliveries body.
func AppendDelivery(b []byte, seq uint64, encoded []byte) []byte {
	b = binary.AppendUvarint(b, seq)
	b = binary.AppendUvarint(b, uint64(len(encoded)))
	return append(b, encoded...)
}

// DecodeDeliveries reads a ContentTypeDeliveries body.
func DecodeDeliveries(body []byte) ([]Delivery, error) {
	var out []Delivery
	for len(body) > 0 {
		seq, n := binary.Uvarint(body)
		if n <= 0 {
			return nil, errors.New("deliveries: bad position")
		}
		body = body[n:]
		size, n := binary.Uvarint(body)
		if n <= 0 || size > uint64(len(body)-n) {
			return nil, errors.New("deliveries: bad length")
		}
		body = body[n:]
		var d Delivery
		if err := Decode(body[:size], &d); err != nil {
			return nil, err
		}
		d.Seq = seq
		out = append(out, d)
		body = body[size:]
	}
	return out, nil
}
