package wire

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

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
	buf := jsonBufs.Get().(*[]byte)
	defer putJSON(buf)
	var raw []byte
	var err error
	switch m := v.(type) {
	case Delivery:
		rows := m.Rows
		m.Rows = nil
		raw, err = marshalWithRows((*buf)[:0], &m, rows)
	case *Delivery:
		d := *m
		d.Rows = nil
		raw, err = marshalWithRows((*buf)[:0], &d, m.Rows)
	case Batch:
		rows := m.Rows
		m.Rows = nil
		raw, err = marshalWithRows((*buf)[:0], &m, rows)
	case *Batch:
		b := *m
		b.Rows = nil
		raw, err = marshalWithRows((*buf)[:0], &b, m.Rows)
	default:
		raw, err = json.Marshal(v)
	}
	if err != nil {
		return nil, err
	}
	*buf = raw
	return s2.Encode(nil, raw), nil
}

// jsonBufs hold the JSON of messages being encoded or decoded: it is
// only needed until it is compressed, or read (every value read from it
// is a copy), and a bulk exchange went through hundreds of megabytes of
// it, for the collector to follow.
var jsonBufs = sync.Pool{New: func() any { return new([]byte) }}

// putJSON gives a buffer back, unless it grew past what a message needs.
func putJSON(buf *[]byte) {
	if cap(*buf) <= 8*MaxMessage {
		jsonBufs.Put(buf)
	}
}

// decompress decodes body into a buffer of jsonBufs, for putJSON.
func decompress(body []byte) ([]byte, *[]byte, error) {
	buf := jsonBufs.Get().(*[]byte)
	n, err := s2.DecodedLen(body)
	if err != nil {
		putJSON(buf)
		return nil, nil, fmt.Errorf("exchange message: %w", err)
	}
	if cap(*buf) < n {
		*buf = make([]byte, n)
	}
	raw, err := s2.Decode((*buf)[:cap(*buf)], body)
	if err != nil {
		putJSON(buf)
		return nil, nil, fmt.Errorf("exchange message: %w", err)
	}
	return raw, buf, nil
}

// Decode reads a message body into v.
func Decode(b []byte, v any) error {
	raw, buf, err := decompress(b)
	if err != nil {
		return err
	}
	defer putJSON(buf)
	switch m := v.(type) {
	case *Delivery:
		return decodeWithRows(raw, m, &m.Rows)
	case *Batch:
		return decodeWithRows(raw, m, &m.Rows)
	}
	return json.Unmarshal(raw, v)
}

// DecodeBatchHead reads a Batch's body as Decode does, and refuses what
// Decode refuses, but leaves its rows out: the node endpoint needs only
// a batch's identity, and the intake reads the rows.
func DecodeBatchHead(body []byte) (Batch, error) {
	var b Batch
	raw, buf, err := decompress(body)
	if err != nil {
		return b, err
	}
	defer putJSON(buf)
	err = decodeWithRows(raw, &b, nil)
	b.Rows = nil // read by encoding/json when the rows member was unusual
	return b, err
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
