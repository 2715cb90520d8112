// Signs a webhook request as Twilio does, with Twilio's own library (the `twilio`
// package's getExpectedTwilioSignature): tests/api/webhooks.rs sends what this prints
// as X-Twilio-Signature.
//
//     node sign.js '{"token": "...", "url": "https://...", "params": {"Name": "value"}}'
const twilio = require("twilio");

const { token, url, params } = JSON.parse(process.argv[2]);
process.stdout.write(twilio.getExpectedTwilioSignature(token, url, params));
