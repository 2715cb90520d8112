// Writes TwiML with Twilio's own library (the `twilio` package's twiml.VoiceResponse):
// tests/api/calls.rs compares what the voice webhooks answer with what this prints for
// the same verbs.
//
//     node twiml.js '{"verbs": [{"verb": "dial", "attributes": {...}, "numbers": [{"attributes": {...}, "number": "+1..."}]}]}'
//     verbs: {"verb": "say", "text": "..."}, {"verb": "hangup"}, {"verb": "dial", ...}
const twilio = require("twilio");

const { verbs } = JSON.parse(process.argv[2]);
const response = new twilio.twiml.VoiceResponse();
for (const step of verbs) {
  if (step.verb === "say") response.say(step.text);
  else if (step.verb === "hangup") response.hangup();
  else if (step.verb === "dial") {
    const dial = response.dial(step.attributes);
    for (const { attributes, number } of step.numbers) dial.number(attributes ?? {}, number);
  } else throw new Error(`no verb ${step.verb}`);
}
process.stdout.write(response.toString());
