# Tally as a container: a static binary (no cgo: the embedded SQLite is pure Go) on an empty base,
# running as a non-root user. Build: docker build -t tally .
# Run:   docker run -p 8080:8080 -e TALLY_DATABASE_URL=postgres://... -e TALLY_CUSTOMER_SECRET=... \
#          -e TALLY_LEDGER_KEY=... tally
# Without TALLY_DATABASE_URL it uses the embedded SQLite under /var/lib/tally (mount a volume there).
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/tally ./cmd/tally \
 && mkdir -p /out/var/lib/tally

FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/
COPY --from=build /out/tally /tally
COPY --from=build --chown=65532:65532 /out/var/lib/tally /var/lib/tally
USER 65532:65532
WORKDIR /var/lib/tally
ENV TALLY_ADDR=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["/tally"]
# The working directory holds the embedded database (tally.db) and the local accrual spool by default.
CMD ["serve"]
