package store

import "testing"

func TestRebindDollar(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"SELECT 1", "SELECT 1"},
		{"a = ? AND b = ?", "a = $1 AND b = $2"},
		{"x = '?' AND y = ?", "x = '?' AND y = $1"},
		{`"odd?name" = ? OR z = 'it''s ?'`, `"odd?name" = $1 OR z = 'it''s ?'`},
		{"IN (?, ?, ?)", "IN ($1, $2, $3)"},
	}
	for _, tc := range tests {
		if got := rebindDollar(tc.in); got != tc.want {
			t.Errorf("rebindDollar(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if got := placeholders(3); got != "?, ?, ?" {
		t.Errorf("placeholders(3) = %q", got)
	}
}
