package webhook

import "testing"

// GitHub's "Validating webhook deliveries" gives this secret and payload, and the
// X-Hub-Signature-256 a correct implementation makes of them. It documents no SHA-1 value; that
// one is `printf 'Hello, World!' | openssl dgst -sha1 -hmac "It's a Secret to Everybody"`.
func TestSignaturesAreGitHubs(t *testing.T) {
	secret, payload := "It's a Secret to Everybody", []byte("Hello, World!")
	for _, c := range []struct{ name, got, want string }{
		{"SHA-256", SignSHA256(secret, payload), "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"},
		{"SHA-1", SignSHA1(secret, payload), "sha1=01dc10d0c83e72ed246219cdd91669667fe2ca59"},
	} {
		if c.got != c.want {
			t.Errorf("%s: %s, GitHub's is %s", c.name, c.got, c.want)
		}
	}
}
