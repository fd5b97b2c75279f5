package frontend

import (
	"context"
	"fmt"

	"cloud.google.com/go/auth/credentials"
	firebase "firebase.google.com/go/v4"
	"firebase.google.com/go/v4/auth"
	"google.golang.org/api/option"
)

// AdminClient is the Firebase Admin SDK's auth client, which revokes a
// user's refresh tokens at sign-out. In production it calls Identity
// Platform with Application Default Credentials (Cloud Run's service account,
// which needs permission to update users); with FIREBASE_AUTH_EMULATOR_HOST
// set, the SDK talks to the emulator without credentials (the SDK reads only
// the process environment, as idtoken explains). cmd/frontend and
// local/stack pass it to New as Deps.Revoker.
func AdminClient(ctx context.Context, cfg Config) (*auth.Client, error) {
	var opts []option.ClientOption
	if cfg.AuthEmulatorHost == "" {
		creds, err := credentials.DetectDefault(&credentials.DetectOptions{
			Scopes: []string{"https://www.googleapis.com/auth/cloud-platform"},
		})
		if err != nil {
			return nil, fmt.Errorf("detecting application default credentials: %w", err)
		}
		opts = append(opts, option.WithAuthCredentials(creds))
	}
	app, err := firebase.NewApp(ctx, &firebase.Config{ProjectID: cfg.ProjectID}, opts...)
	if err != nil {
		return nil, fmt.Errorf("creating the Firebase app: %w", err)
	}
	c, err := app.Auth(ctx)
	if err != nil {
		return nil, fmt.Errorf("creating the Firebase Auth client: %w", err)
	}
	return c, nil
}
