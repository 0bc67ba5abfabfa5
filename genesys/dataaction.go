package genesys

import (
	"fmt"
	"strings"
)

// DataAction is a Data Action as the Genesys UI exports and imports it (integrationType
// custom-rest-actions). The integration it belongs to is chosen at import; Terraform names it as the
// action's category.
type DataAction struct {
	Name            string       `json:"name"`
	IntegrationType string       `json:"integrationType"`
	ActionType      string       `json:"actionType"`
	Config          ActionConfig `json:"config"`
	Contract        *Contract    `json:"contract,omitempty"` // absent on the custom auth action
	Secure          bool         `json:"secure"`
	spec            *actionSpec  // how it was built, for Terraform and INSTALL.md
	integration     string       // the integration it belongs to
}

// ActionConfig is a Data Action's config.
type ActionConfig struct {
	Request  Request  `json:"request"`
	Response Response `json:"response"`
	// TimeoutSeconds is 1..60 (Genesys's default 60); not allowed on the custom auth action.
	TimeoutSeconds int `json:"timeoutSeconds,omitempty"`
}

// Request is config.request: Velocity templates for the URL and the body.
type Request struct {
	RequestURLTemplate string            `json:"requestUrlTemplate"`
	RequestType        string            `json:"requestType"`
	Headers            map[string]string `json:"headers"`
	RequestTemplate    string            `json:"requestTemplate"`
}

// Response is config.response: JSONPaths into the answer and the output built from them.
type Response struct {
	TranslationMap         map[string]string `json:"translationMap"`
	TranslationMapDefaults map[string]string `json:"translationMapDefaults"`
	SuccessTemplate        string            `json:"successTemplate"`
}

// Contract holds the input and output JSON Schemas.
type Contract struct {
	Input struct {
		InputSchema *ObjectSchema `json:"inputSchema"`
	} `json:"input"`
	Output struct {
		SuccessSchema *ObjectSchema `json:"successSchema"`
	} `json:"output"`
}

// ObjectSchema is a contract's schema: an object whose properties are flat (Architect reads no nesting).
// Properties is always written, empty or not; required only when not empty (draft-04 wants an item).
type ObjectSchema struct {
	Draft                string             `json:"$schema"`
	Title                string             `json:"title"`
	Type                 string             `json:"type"`
	Properties           map[string]*Schema `json:"properties"`
	Required             []string           `json:"required,omitempty"` // draft-04 wants at least one
	AdditionalProperties bool               `json:"additionalProperties"`
}

// Schema is the draft-04 JSON Schema subset Genesys's exported contracts use.
type Schema struct {
	Draft                string             `json:"$schema,omitempty"`
	Title                string             `json:"title,omitempty"`
	Description          string             `json:"description,omitempty"`
	Type                 string             `json:"type"`
	Properties           map[string]*Schema `json:"properties,omitempty"`
	Required             []string           `json:"required,omitempty"`
	AdditionalProperties *bool              `json:"additionalProperties,omitempty"`
	Items                *Schema            `json:"items,omitempty"`
	Enum                 []string           `json:"enum,omitempty"`
	Minimum              *int64             `json:"minimum,omitempty"`
}

const draft04 = "http://json-schema.org/draft-04/schema#"

// field is an input or an output of an action.
type field struct {
	name, typ, desc string
	items           string   // element type of an array
	path            string   // outputs: JSONPath into Tally's answer
	def             string   // outputs: JSON literal when the path does not resolve ("" for none)
	enum            []string // inputs
	min             *int64   // inputs
}

// actionSpec describes one action; build turns it into the exported shape.
type actionSpec struct {
	File        string // path under the output directory
	Name        string
	Summary     string // for INSTALL.md
	Admin       bool   // belongs to the admin integration
	Method      string
	Path        string // Tally route
	Timeout     int
	Body        string // Velocity request template
	Inputs      []field
	Outputs     []field
	Description string
}

func int64p(v int64) *int64 { return &v }

// jsonString is the Velocity for a string input placed inside a JSON string literal.
func jsonString(input string) string { return `"$esc.jsonString(${input.` + input + `})"` }

// actionSpecs are the Data Actions, in the order INSTALL.md lists them.
func actionSpecs() []*actionSpec {
	customerID := field{name: "customerId", typ: "string", desc: "The customer as the contact centre knows them (the Messenger customerId attribute, or an external contact id); Tally hashes it."}
	key := field{name: "idempotencyKey", typ: "string", desc: "Unique per intended operation (e.g. the conversation id plus a purpose): a repeat with the same key changes nothing and answers the first answer."}
	agent := field{name: "agent", typ: "string", desc: "Who asks (the agent's name or id), recorded as the transaction's actor."}
	return []*actionSpec{
		{
			File: "data-actions/ledger/balance-lookup.json", Name: "Tally - Balance Lookup",
			Summary: "the balance, tier and a portal session token of a customer (the inbound message flow)",
			Method:  "POST", Path: "/v1/ledger/balance/lookup", Timeout: 3,
			Body: `{"customer_hash": ` + jsonString("customerId") + `, "channel": ` + jsonString("channel") +
				`, "request_id": ` + jsonString("requestId") + `}`,
			Inputs: []field{customerID,
				{name: "channel", typ: "string", desc: "Where the customer is, e.g. webmessaging (informational)."},
				{name: "requestId", typ: "string", desc: "A correlation id, e.g. the conversation id (informational)."}},
			Outputs: []field{
				{name: "customerHash", typ: "string", path: "$.customer_hash", desc: "Tally's hash of the customer."},
				{name: "balance", typ: "integer", path: "$.balance", desc: "Points."},
				{name: "balanceVersion", typ: "integer", path: "$.balance_version", desc: "Grows by one with every transaction."},
				{name: "tier", typ: "string", path: "$.tier", desc: "The programme tier."},
				{name: "stale", typ: "boolean", path: "$.stale", def: "false", desc: "True when Tally answered its last-known balance."},
				{name: "sessionToken", typ: "string", path: "$.session_token", def: `""`, desc: "A portal session token for the loyalty widget; empty when a stale answer could not issue one."},
				{name: "sessionExpiresIn", typ: "integer", path: "$.session_expires_in", def: "0", desc: "Seconds the session token lives."},
			},
		},
		{
			File: "data-actions/ledger/process-conversation-end.json", Name: "Tally - Process Conversation End",
			Summary: "forwards a customer.end event to Tally, which credits the points its earning rules give (the workflow)",
			Method:  "POST", Path: "/v1/ledger/transaction/process", Timeout: 10,
			Body: `{"conversationId": ` + jsonString("conversationId") + `, "participantId": ` + jsonString("participantId") +
				`, "eventTime": ${input.eventTime}, "mediaType": ` + jsonString("mediaType") + `, "messageType": ` + jsonString("messageType") +
				`, "disconnectType": ` + jsonString("disconnectType") + `, "interactingDurationMs": ${input.interactingDurationMs}` +
				`, "externalContactId": ` + jsonString("customerId") + `}`,
			Inputs: []field{
				{name: "conversationId", typ: "string", desc: "The event's conversationId."},
				{name: "participantId", typ: "string", desc: "The event's participantId (with conversationId, the event's identity)."},
				{name: "eventTime", typ: "integer", desc: "The event's eventTime (epoch milliseconds)."},
				{name: "mediaType", typ: "string", desc: "The event's mediaType, e.g. MESSAGE."},
				{name: "messageType", typ: "string", desc: "The event's messageType, e.g. WEBMESSAGING; empty when none."},
				{name: "disconnectType", typ: "string", desc: "The event's disconnectType; empty when none."},
				{name: "interactingDurationMs", typ: "integer", desc: "The event's interactingDurationMs; 0 when none."},
				{name: "customerId", typ: "string", desc: "The customer to credit: the customerId the page set (as the balance lookup used it), else the event's externalContactId."},
			},
			Outputs: []field{
				{name: "status", typ: "string", path: "$.status", desc: "applied, or ignored when no earning rule matched."},
				{name: "eventId", typ: "string", path: "$.event_id", def: `""`, desc: "The event's key in Tally."},
				{name: "transactionId", typ: "integer", path: "$.transaction_id", def: "0", desc: "The accrual; 0 when ignored."},
				{name: "amount", typ: "integer", path: "$.amount", def: "0", desc: "Points credited; 0 when ignored."},
			},
		},
		{
			File: "data-actions/ledger/reward-catalog.json", Name: "Tally - Reward Catalog",
			Summary: "the reward catalog as parallel lists (the inbound message flow compares a reward's cost with the balance)",
			Method:  "GET", Path: "/v1/catalog/rewards", Timeout: 5,
			Body: "${input.rawRequest}",
			Outputs: []field{
				{name: "rewardIds", typ: "array", items: "string", path: "$.rewards[*].reward_id", def: "[]", desc: "Every reward's id, ordered by id."},
				{name: "rewardNames", typ: "array", items: "string", path: "$.rewards[*].name", def: "[]", desc: "Their names, in the same order."},
				{name: "pointCosts", typ: "array", items: "integer", path: "$.rewards[*].point_cost", def: "[]", desc: "Their costs in points, in the same order."},
				{name: "active", typ: "array", items: "boolean", path: "$.rewards[*].active", def: "[]", desc: "Whether each can be redeemed now, in the same order."},
			},
		},
		{
			File: "data-actions/ledger/redeem-reward.json", Name: "Tally - Redeem Reward",
			Summary: "an agent redeems a reward for the customer (the guide's redeem body)",
			Method:  "POST", Path: "/v1/ledger/transaction/process", Timeout: 10,
			Body: `{"customer_hash": ` + jsonString("customerId") + `, "reward_id": ` + jsonString("rewardId") +
				`, "point_cost": ${input.pointCost}, "fulfillment_method": ` + jsonString("fulfillmentMethod") +
				`, "idempotency_key": ` + jsonString("idempotencyKey") + `}`,
			Inputs: []field{customerID,
				{name: "rewardId", typ: "string", desc: "The reward."},
				{name: "pointCost", typ: "integer", min: int64p(1), desc: "The cost the customer was shown: Tally refuses the redemption if the catalog's cost differs."},
				{name: "fulfillmentMethod", typ: "string", enum: []string{"webhook", "email", "coupon", "manual"}, desc: "Informational: the reward decides."},
				key},
			Outputs: []field{
				{name: "receiptId", typ: "string", path: "$.receipt_id"},
				{name: "transactionId", typ: "integer", path: "$.transaction_id"},
				{name: "rewardId", typ: "string", path: "$.reward_id"},
				{name: "pointsDebited", typ: "integer", path: "$.points_debited"},
				{name: "balanceAfter", typ: "integer", path: "$.balance_after"},
				{name: "fulfillmentMethod", typ: "string", path: "$.fulfillment.method"},
				{name: "fulfillmentStatus", typ: "string", path: "$.fulfillment.status"},
				{name: "couponCode", typ: "string", path: "$.fulfillment.coupon_code", def: `""`, desc: "The coupon, for a coupon reward delivered at once."},
			},
		},
		{
			File: "data-actions/admin/goodwill-adjustment.json", Name: "Tally - Goodwill Adjustment", Admin: true,
			Summary: "an agent credits (or, negative, debits) points as a goodwill gesture",
			Method:  "POST", Path: "/v1/ledger/transaction/process", Timeout: 10,
			Body: `{"idempotency_key": ` + jsonString("idempotencyKey") + `, "channel": "genesys.agent", "customer_hash": ` + jsonString("customerId") +
				`, "kind": "adjustment", "amount": ${input.amount}, "reason": ` + jsonString("reason") + `, "actor": ` + jsonString("agent") + `}`,
			Inputs: []field{key, customerID,
				{name: "amount", typ: "integer", desc: "Points: positive credits, negative debits, never 0."},
				{name: "reason", typ: "string", desc: "Why (kept with the transaction for audit)."},
				agent},
			Outputs: adjustmentOutputs(),
		},
		{
			File: "data-actions/admin/reinstate-expired-points.json", Name: "Tally - Reinstate Expired Points", Admin: true,
			Summary: "an agent gives back points that expired (an adjustment whose reason says so, until points expiry has its own route)",
			Method:  "POST", Path: "/v1/ledger/transaction/process", Timeout: 10,
			Body: `{"idempotency_key": ` + jsonString("idempotencyKey") + `, "channel": "genesys.agent", "customer_hash": ` + jsonString("customerId") +
				`, "kind": "adjustment", "amount": ${input.points}, "reason": "reinstate expired points: $esc.jsonString(${input.reference})"` +
				`, "actor": ` + jsonString("agent") + `, "metadata": {"purpose": "reinstate-expired-points"}}`,
			Inputs: []field{key, customerID,
				{name: "points", typ: "integer", min: int64p(1), desc: "The points to give back."},
				{name: "reference", typ: "string", desc: "The case or ticket the reinstatement answers."},
				agent},
			Outputs: adjustmentOutputs(),
		},
	}
}

func adjustmentOutputs() []field {
	return []field{
		{name: "status", typ: "string", path: "$.status"},
		{name: "transactionId", typ: "integer", path: "$.transaction_id"},
		{name: "kind", typ: "string", path: "$.kind"},
		{name: "amount", typ: "integer", path: "$.amount"},
		{name: "balance", typ: "integer", path: "$.balance", desc: "The balance after the adjustment."},
		{name: "balanceVersion", typ: "integer", path: "$.balance_version"},
	}
}

// authHeaders are sent by every action: the token the custom auth action obtained.
func authHeaders() map[string]string {
	return map[string]string{
		"Authorization": "Bearer ${authResponse.token}",
		"Content-Type":  "application/json",
		"Accept":        "application/json",
	}
}

// build turns a spec into the exported Data Action.
func (s *actionSpec) build(c Config) *DataAction {
	in := &ObjectSchema{Draft: draft04, Title: s.Name + " input", Type: "object", Properties: map[string]*Schema{},
		Required: []string{}, AdditionalProperties: true}
	for _, f := range s.Inputs {
		p := &Schema{Type: f.typ, Description: f.desc, Enum: f.enum, Minimum: f.min}
		in.Properties[f.name] = p
		in.Required = append(in.Required, f.name)
	}
	out := &ObjectSchema{Draft: draft04, Title: s.Name + " output", Type: "object", Properties: map[string]*Schema{},
		Required: []string{}, AdditionalProperties: true}
	tm, defaults := map[string]string{}, map[string]string{}
	var tmpl []string
	for _, f := range s.Outputs {
		p := &Schema{Type: f.typ, Description: f.desc}
		if f.items != "" {
			p.Items = &Schema{Type: f.items}
		}
		out.Properties[f.name] = p
		out.Required = append(out.Required, f.name)
		tm[f.name] = f.path
		if f.def != "" {
			defaults[f.name] = f.def
		}
		// Translation map values are JSON values already (a string keeps its quotes).
		tmpl = append(tmpl, fmt.Sprintf(`"%s": ${%s}`, f.name, f.name))
	}
	a := &DataAction{
		Name: s.Name, IntegrationType: "custom-rest-actions", ActionType: "custom", Secure: false,
		Config: ActionConfig{
			Request: Request{RequestURLTemplate: c.BaseURL + s.Path, RequestType: s.Method, Headers: authHeaders(),
				RequestTemplate: s.Body},
			Response:       Response{TranslationMap: tm, TranslationMapDefaults: defaults, SuccessTemplate: "{" + strings.Join(tmpl, ", ") + "}"},
			TimeoutSeconds: s.Timeout,
		},
		Contract: &Contract{},
		spec:     s,
	}
	a.Contract.Input.InputSchema = in
	a.Contract.Output.SuccessSchema = out
	a.integration = c.Integration
	if s.Admin {
		a.integration = c.AdminIntegration
	}
	return a
}

// CustomAuthFile is where the custom auth action's configuration is written.
const CustomAuthFile = "data-actions/custom-auth.json"

// customAuthAction is the configuration of the auth action Genesys creates for an integration whose
// credential is User Defined (OAuth): a client credentials grant against Tally's token endpoint with
// HTTP Basic (RFC 6749 §2.3.1 form-encodes the id and secret first, hence $esc.url). Every other action
// sends the token it names as ${authResponse.token}.
func customAuthAction(c Config) *DataAction {
	return &DataAction{
		Name: "Tally - Custom Auth", IntegrationType: "custom-rest-actions", ActionType: "custom",
		Config: ActionConfig{
			Request: Request{
				RequestURLTemplate: c.BaseURL + "/oauth/token",
				RequestType:        "POST",
				Headers: map[string]string{
					"Authorization": `Basic $encoding.base64("$esc.url(${credentials.clientId}):$esc.url(${credentials.clientSecret})")`,
					"Content-Type":  "application/x-www-form-urlencoded",
					"Accept":        "application/json",
				},
				RequestTemplate: "grant_type=client_credentials",
			},
			Response: Response{
				TranslationMap:         map[string]string{"tokenValue": "$.access_token"},
				TranslationMapDefaults: map[string]string{},
				SuccessTemplate:        `{"token": ${tokenValue}}`,
			},
		},
	}
}

// CredentialFields are the fields of the User Defined (OAuth) credential the auth action reads.
var CredentialFields = []string{"clientId", "clientSecret"}

// AuthResponseFields are what the auth action's success template names.
var AuthResponseFields = []string{"token"}
