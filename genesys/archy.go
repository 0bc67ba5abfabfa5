package genesys

// Builders for the Archy YAML shapes seen in Genesys's published flows (GenesysCloudBlueprints
// send-message-transcript-by-email terraform/modules/flow/*.yaml, switch-voice-to-web-messaging
// terraform/modules/inbound-message-flow/*.yaml).

func lit(v any) omap        { return m("lit", v) }
func exp(s string) omap     { return m("exp", s) }
func ref(s string) omap     { return m("var", s) }
func noValue() omap         { return m("noValue", true) }
func actions(a ...any) omap { return m("actions", list(a)) }

// variable declares a flow variable; kind is stringVariable, integerVariable, booleanVariable,
// stringCollectionVariable...
func variable(kind, name string, initial omap, input bool) omap {
	if initial == nil {
		initial = noValue()
	}
	v := m("name", name, "initialValue", initial)
	if input {
		v = append(v, kv{"isInput", true})
	}
	v = append(v, kv{"isOutput", false})
	return m(kind, v)
}

func state(name, refID string, vars list, acts ...any) omap {
	s := m("name", name, "refId", refID)
	if len(vars) > 0 {
		s = append(s, kv{"variables", vars})
	}
	s = append(s, kv{"actions", list(acts)})
	return m("state", s)
}

func changeState(flowKey, refID string) omap {
	return m("changeState", m("name", "Change State", "targetStateRef", stateRef(flowKey, refID)))
}

func stateRef(flowKey, refID string) string {
	return "/" + flowKey + "/states/state[" + refID + "]"
}

// decision branches on a condition; an empty branch is left out.
func decision(name, condition string, yes, no list) omap {
	outs := omap{}
	if len(yes) > 0 {
		outs = append(outs, kv{"yes", actions(yes...)})
	}
	if len(no) > 0 {
		outs = append(outs, kv{"no", actions(no...)})
	}
	return m("decision", m("name", name, "condition", exp(condition), "outputs", outs))
}

// update assigns variables: each statement is (type, variable, expression).
func updateData(name string, stmts ...[3]string) omap {
	var l list
	for _, s := range stmts {
		l = append(l, m(s[0], m("variable", s[1], "value", exp(s[2]))))
	}
	return m("updateData", m("name", name, "statements", l))
}

// loop runs body count times, counting in index (an integer variable).
func loop(name, index string, count int, body ...any) omap {
	return m("loop", m("name", name, "currentIndex", ref(index), "loopCount", lit(count),
		"outputs", m("loop", actions(body...))))
}

// failureOutputNames are the outputs every Call Data Action's failure path offers.
var failureOutputNames = []string{"errorCode", "status", "correlationId", "entityId", "entityName", "userMessage",
	"userParamsMessage", "userParams.key", "userParams.value", "details.errorCode", "details.fieldName",
	"details.entityId", "details.entityName"}

// callData calls a Data Action of an integration. outputs maps each action output to a flow variable;
// errorVar receives the failure's errorCode. success, failure and timeout are the three paths.
func callData(name, integration, action string, timeoutSeconds int, inputs omap, outputs omap, errorVar string,
	success, failure, timeout list) omap {
	fail := omap{}
	for _, f := range failureOutputNames {
		if f == "errorCode" && errorVar != "" {
			fail = append(fail, kv{f, ref(errorVar)})
		} else {
			fail = append(fail, kv{f, noValue()})
		}
	}
	call := m("inputs", inputs)
	if len(outputs) > 0 {
		call = append(call, kv{"successOutputs", outputs})
	}
	call = append(call, kv{"failureOutputs", fail})
	outs := omap{}
	for _, p := range []struct {
		name string
		acts list
	}{{"success", success}, {"failure", failure}, {"timeout", timeout}} {
		if len(p.acts) > 0 {
			outs = append(outs, kv{p.name, actions(p.acts...)})
		}
	}
	return m("callData", m("name", name, "timeout", lit(m("seconds", timeoutSeconds)),
		"category", m(integration, m("dataAction", m(action, call))), "outputs", outs))
}

// participantData writes attributes (key, expression) to the conversation's participant data, where
// agents and the widget's page read them.
func participantData(name string, attrs ...[2]string) omap {
	var l list
	for _, a := range attrs {
		l = append(l, m("attribute", m("name", lit(a[0]), "value", exp(a[1]))))
	}
	return m("setParticipantData", m("name", name, "attributes", l))
}

func sendResponse(name, body string) omap {
	return m("sendResponse", m("name", name, "messageBody", exp(body)))
}
