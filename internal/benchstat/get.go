package benchstat

import (
	"bytes"
	"context"
	"fmt"
	"net/http"

	"govshare/client"
)

// Get sends one GET, signed by app when it is set, and reads the whole
// answer into buf; any status but 200 is an error quoting the answer.
func Get(ctx context.Context, hc *http.Client, target string, app *client.App, purpose string, buf *bytes.Buffer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return err
	}
	if app != nil {
		if err := app.SignRequest(req, purpose); err != nil {
			return err
		}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	buf.Reset()
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d: %.300s", resp.StatusCode, bytes.TrimSpace(buf.Bytes()))
	}
	return nil
}
