// A durable job's progress (bulk updates, imports) as it runs.

import { api } from "./api.js";
import { clear, words } from "./dom.js";
import { live } from "./live.js";

// Shows a job's progress until it ends: from job.progress events as they come, and a
// poll every two seconds in case the socket is down.
export function follow(jobId, progress, outcome, onEnd) {
  progress.hidden = false;
  let ended = false;
  const show = (job) => {
    if (ended) return;
    progress.max = Math.max(job.total || 0, 1);
    progress.value = job.processed || 0;
    clear(outcome, `${words(job.status)}: ${job.processed ?? 0} of ${job.total ?? "?"} done, ${job.succeeded ?? 0} succeeded, ${job.failed ?? 0} failed.`);
    if (job.finished_at) {
      ended = true;
      live.removeEventListener("job.progress", onEvent);
      live.removeEventListener("job.finished", onEvent);
      clearInterval(timer);
      if (onEnd) onEnd(job);
    }
  };
  const onEvent = (event) => event.detail.id === jobId && show(event.detail);
  live.addEventListener("job.progress", onEvent);
  live.addEventListener("job.finished", onEvent);
  const timer = setInterval(async () => show(await api("GET", `/jobs/${jobId}`)), 2000);
  api("GET", `/jobs/${jobId}`).then(show);
}
