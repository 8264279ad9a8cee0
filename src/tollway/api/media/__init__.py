"""Media routes: images and audio (synchronous), async jobs (NightVeil/Venice queue API), the seed-001 task API,
and the form and URL input they share."""
