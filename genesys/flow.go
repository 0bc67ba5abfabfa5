package genesys

import "fmt"

// The inbound message flow's attribute names: what the page sets through Messenger's Database.set and
// what the flow writes back for agents and the widget.
const (
	AttrCustomerID   = "customerId"
	AttrRewardID     = "rewardId"
	AttrBalance      = "loyaltyBalance"
	AttrTier         = "loyaltyTier"
	AttrSessionToken = "loyaltySessionToken"
	AttrStale        = "loyaltyStale"
	AttrCanRedeem    = "loyaltyCanRedeem"
	AttrAttempts     = "loyaltyLookupAttempts"
	AttrLookupFailed = "loyaltyLookupFailed"
)

// LookupAttempts is how many times the flow calls the balance lookup before its fallback: the first try
// and up to 2 more (a Data Action does not retry by itself).
const LookupAttempts = 3

// inboundMessageFlow is the Archy YAML of the web messaging flow: read the customer id from participant
// data, look the balance up (3 s, up to 2 retries), write balance, tier and session token to participant
// data, compare the balance with the chosen reward's cost, and hand the conversation to the queue; a
// maintenance message and the queue when Tally cannot be reached.
func inboundMessageFlow(c Config) ([]byte, error) {
	const key = "inboundShortMessage"
	const (
		initial  = "Initial State_10"
		lookup   = "Look Up Balance_20"
		reward   = "Check Reward_30"
		transfer = "Transfer_40"
		fallback = "Fallback_90"
	)
	lookupAction, catalogAction := actionSpecs()[0], actionSpecs()[2]
	vars := list{
		variable("stringVariable", "Flow.customerId", nil, false),
		variable("stringVariable", "Flow.rewardId", nil, false),
		variable("integerVariable", "Flow.attempt", lit(0), false),
		variable("integerVariable", "Flow.failures", lit(0), false),
		variable("stringVariable", "Flow.errorCode", nil, false),
		variable("stringVariable", "Flow.customerHash", nil, false),
		variable("integerVariable", "Flow.balance", nil, false),
		variable("integerVariable", "Flow.balanceVersion", nil, false),
		variable("stringVariable", "Flow.tier", nil, false),
		variable("booleanVariable", "Flow.stale", nil, false),
		variable("stringVariable", "Flow.sessionToken", nil, false),
		variable("integerVariable", "Flow.sessionExpiresIn", nil, false),
		variable("stringCollectionVariable", "Flow.rewardIds", nil, false),
		variable("stringCollectionVariable", "Flow.rewardNames", nil, false),
		variable("integerCollectionVariable", "Flow.pointCosts", nil, false),
		variable("booleanCollectionVariable", "Flow.rewardActive", nil, false),
		variable("integerVariable", "Flow.rewardIndex", nil, false),
		variable("integerVariable", "Flow.rewardCost", nil, false),
		variable("stringVariable", "Flow.rewardName", nil, false),
	}
	counted := [3]string{"integer", "Flow.failures", "Flow.failures + 1"}
	balanceMessage := `Append("You have ", ToString(Flow.balance), " points (", Flow.tier, " tier).")`

	states := list{
		state("Initial State", initial, nil,
			m("getParticipantData", m("name", "Read the customer from the page", "attributes", list{
				m("attribute", m("name", lit(AttrCustomerID), "variable", "Flow.customerId")),
				m("attribute", m("name", lit(AttrRewardID), "variable", "Flow.rewardId")),
			})),
			decision("Customer known?", "IsNotSetOrEmpty(Flow.customerId)",
				list{updateData("No customer id", [3]string{"string", "Flow.errorCode", `"no customerId"`}),
					changeState(key, fallback)}, nil),
			changeState(key, lookup),
		),
		state("Look Up Balance", lookup, nil,
			loop(fmt.Sprintf("Try the lookup up to %d times", LookupAttempts), "Flow.attempt", LookupAttempts,
				callData("Balance lookup", c.Integration, lookupAction.Name, lookupAction.Timeout,
					m("customerId", exp("Flow.customerId"), "channel", lit("webmessaging"),
						"requestId", exp("Message.ConversationId")),
					m("customerHash", ref("Flow.customerHash"), "balance", ref("Flow.balance"),
						"balanceVersion", ref("Flow.balanceVersion"), "tier", ref("Flow.tier"),
						"stale", ref("Flow.stale"), "sessionToken", ref("Flow.sessionToken"),
						"sessionExpiresIn", ref("Flow.sessionExpiresIn")),
					"Flow.errorCode",
					list{changeState(key, reward)},
					list{updateData("Count the failure", counted)},
					list{updateData("Count the timeout", counted,
						[3]string{"string", "Flow.errorCode", `"timeout"`})},
				),
			),
			changeState(key, fallback),
		),
		state("Check Reward", reward, nil,
			participantData("Share the balance with agents and the widget",
				[2]string{AttrBalance, "ToString(Flow.balance)"},
				[2]string{AttrTier, "Flow.tier"},
				[2]string{AttrSessionToken, "Flow.sessionToken"},
				[2]string{AttrStale, "ToString(Flow.stale)"},
				[2]string{AttrAttempts, "ToString(Flow.failures + 1)"},
			),
			decision("Reward chosen?", "IsNotSetOrEmpty(Flow.rewardId)",
				list{sendResponse("Tell the balance", balanceMessage), changeState(key, transfer)}, nil),
			callData("Reward catalog", c.Integration, catalogAction.Name, catalogAction.Timeout, omap{},
				m("rewardIds", ref("Flow.rewardIds"), "rewardNames", ref("Flow.rewardNames"),
					"pointCosts", ref("Flow.pointCosts"), "active", ref("Flow.rewardActive")),
				"Flow.errorCode",
				nil,
				list{sendResponse("Tell the balance", balanceMessage), changeState(key, transfer)},
				list{sendResponse("Tell the balance", balanceMessage), changeState(key, transfer)},
			),
			updateData("Find the reward", [3]string{"integer", "Flow.rewardIndex", "FindFirst(Flow.rewardIds, Flow.rewardId)"}),
			decision("Reward in the catalog?", "Flow.rewardIndex < 0",
				list{sendResponse("Tell the balance", balanceMessage), changeState(key, transfer)}, nil),
			updateData("Read the reward",
				[3]string{"integer", "Flow.rewardCost", "GetAt(Flow.pointCosts, Flow.rewardIndex)"},
				[3]string{"string", "Flow.rewardName", "GetAt(Flow.rewardNames, Flow.rewardIndex)"}),
			decision("Enough points?", "Flow.balance >= Flow.rewardCost AND GetAt(Flow.rewardActive, Flow.rewardIndex)",
				list{
					participantData("Can redeem", [2]string{AttrCanRedeem, `"true"`}),
					sendResponse("Enough points", `Append("You have ", ToString(Flow.balance), " points: enough for ", Flow.rewardName, ". An agent will help you redeem it.")`),
				},
				list{
					participantData("Cannot redeem", [2]string{AttrCanRedeem, `"false"`}),
					sendResponse("Not enough points", `Append("You have ", ToString(Flow.balance), " points; ", Flow.rewardName, " needs ", ToString(Flow.rewardCost), ".")`),
				}),
			changeState(key, transfer),
		),
		state("Transfer", transfer, nil,
			m("transferToAcd", m("name", "Transfer to "+c.Queue, "targetQueue", lit(m("name", c.Queue)),
				"priority", lit(0), "preferredAgents", noValue(), "languageSkill", noValue(), "directAgent", noValue())),
			m("disconnect", m("name", "Disconnect")),
		),
		state("Fallback", fallback, nil,
			participantData("Record the failed lookup",
				[2]string{AttrLookupFailed, `"true"`},
				[2]string{AttrAttempts, "ToString(Flow.failures)"}),
			sendResponse("Maintenance message", `"Our loyalty programme is under maintenance right now. An agent will help you."`),
			changeState(key, transfer),
		),
	}
	flow := m(key, m(
		"name", c.Flow,
		"description", "Looks the customer's loyalty balance up in Tally and routes to "+c.Queue+" (generated by tally genesys export).",
		"startUpRef", stateRef(key, initial),
		"defaultLanguage", "en-us",
		"supportedLanguages", m("en-us", m("defaultLanguageSkill", noValue())),
		"variables", vars,
		"settingsErrorHandling", m("errorHandling", m("disconnect", m("none", true))),
		"states", states,
	))
	return marshalYAML(flow)
}
