package x

import (
	_ "github.com/chromedp/chromedp"
	_ "github.com/go-jose/go-jose/v4"
	_ "github.com/jackc/pgx/v5"
	_ "github.com/modelcontextprotocol/go-sdk/mcp"
	_ "golang.org/x/crypto/argon2"
	_ "golang.org/x/oauth2"
	_ "modernc.org/sqlite"
)
