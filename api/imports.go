package api

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"net/http"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/csvimport"
)

// maxImportBody bounds a CSV import sent over HTTP; bigger files belong to `tally import`, which streams
// them and shows progress.
const maxImportBody = 8 << 20

// handleImport imports a CSV file of opening balances and historical accruals (see package csvimport):
// 200 with the summary, rejected rows included; sending the same file again imports nothing twice.
func (s *Server) handleImport(w http.ResponseWriter, r *http.Request) {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "text/csv" {
		writeError(w, r, tally.Errorf(codeMediaType, "send the file as text/csv"))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxImportBody))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		writeError(w, r, tally.Errorf(tally.ETOOLARGE, "the file is larger than %d bytes: import it with 'tally import'", maxImportBody))
		return
	}
	if err != nil {
		writeError(w, r, tally.Errorf(codeMalformed, "the body could not be read"))
		return
	}
	sum, err := csvimport.Import(r.Context(), s.Ledger, bytes.NewReader(body), csvimport.Options{
		Hasher: s.Hasher, Actor: "client:" + principal(r).ClientID,
	})
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, sum)
}
