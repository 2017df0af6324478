package webhook

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"hash"
)

// SignSHA256 is the X-Hub-Signature-256 header GitHub sends with a payload: the HMAC-SHA256 of
// the bytes it sends, keyed by the webhook's secret, in hex after "sha256=". sign_test.go holds
// it to the values GitHub's documentation gives to check an implementation with.
func SignSHA256(secret string, payload []byte) string {
	return "sha256=" + digest(sha256.New, secret, payload)
}

// SignSHA1 is the legacy X-Hub-Signature header GitHub still sends beside it.
func SignSHA1(secret string, payload []byte) string {
	return "sha1=" + digest(sha1.New, secret, payload)
}

func digest(algorithm func() hash.Hash, secret string, payload []byte) string {
	mac := hmac.New(algorithm, []byte(secret))
	mac.Write(payload)
	return hex.EncodeToString(mac.Sum(nil))
}
