package x
import (
 _ "github.com/modelcontextprotocol/go-sdk/mcp"
 _ "modernc.org/sqlite"
 _ "github.com/jackc/pgx/v5"
 _ "golang.org/x/oauth2"
 _ "github.com/go-jose/go-jose/v4"
 _ "github.com/chromedp/chromedp"
 _ "golang.org/x/crypto/argon2"
)
