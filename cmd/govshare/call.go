package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"govshare/client"
)

// callCmd sends one signed request as a department's app, so developers
// can try the API and check their own signing code against it.
func callCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("call", flag.ContinueOnError)
	fs.SetOutput(stderr)
	base := fs.String("url", envOr("GOVSHARE_URL", "http://127.0.0.1:8080"), "platform address; env GOVSHARE_URL")
	key := fs.String("app-key", os.Getenv("GOVSHARE_APP_KEY"), "app key; env GOVSHARE_APP_KEY")
	method := fs.String("sign-method", client.HMACSHA256, "HMAC-SHA256 or HMAC-SM3")
	purpose := fs.String("purpose", "", "what the data is for (required, recorded with the call)")
	data := fs.String("data", "", "request body, or @file")
	verbose := fs.Bool("v", false, "print the canonical string and headers")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: GOVSHARE_APP_SECRET=… govshare call [flags] METHOD PATH\n  e.g. govshare call --app-key app_… --purpose 身份核验 GET /api/v1/me")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		fs.Usage()
		return errors.New("need METHOD and PATH")
	}
	// The secret comes from the environment, never the command line, where
	// other users of the machine could read it.
	sec := os.Getenv("GOVSHARE_APP_SECRET")
	if *key == "" || sec == "" {
		return errors.New("set --app-key (or GOVSHARE_APP_KEY) and GOVSHARE_APP_SECRET: the key and secret shown when the app was registered")
	}
	var body []byte
	if strings.HasPrefix(*data, "@") {
		b, err := os.ReadFile(strings.TrimPrefix(*data, "@"))
		if err != nil {
			return err
		}
		body = b
	} else if *data != "" {
		body = []byte(*data)
	}
	req, err := http.NewRequestWithContext(ctx, strings.ToUpper(fs.Arg(0)), strings.TrimRight(*base, "/")+fs.Arg(1), bytes.NewReader(body))
	if err != nil {
		return err
	}
	if len(body) > 0 {
		req.Header.Set("Content-Type", "application/json")
	}
	app := client.App{Key: *key, Secret: sec, Method: *method}
	if err := app.SignRequest(req, *purpose); err != nil {
		return err
	}
	if *verbose {
		fmt.Fprintf(stderr, "canonical string:\n%s\n\n", client.Canonical(req.Method, req.URL.EscapedPath(), req.URL.Query(),
			req.Header.Get(client.HeaderTimestamp), req.Header.Get(client.HeaderNonce), body))
		for _, h := range []string{client.HeaderAppKey, client.HeaderTimestamp, client.HeaderNonce, client.HeaderMethod, client.HeaderSignature, client.HeaderPurpose} {
			fmt.Fprintf(stderr, "%s: %s\n", h, req.Header.Get(h))
		}
	}
	resp, err := (&http.Client{Timeout: 60 * time.Second}).Do(req)
	if err != nil {
		return fmt.Errorf("call %s: %w", req.URL, err)
	}
	defer resp.Body.Close()
	fmt.Fprintln(stderr, resp.Status)
	if _, err := io.Copy(stdout, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode >= 400 {
		return exitError(1)
	}
	return nil
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
