// A Bluesky PDS (@atproto/pds, the reference server) and a PLC directory held in memory
// (@did-plc/server), each on a free port of 127.0.0.1, for the publishing tests.
//
// When both answer, one JSON line goes to stdout:
//   {"pds": URL, "plc": URL, "handleDomain": ".test", "adminPassword": ..., "jwtSecret": ...,
//    "dataDirectory": PATH, "startupMs": ...}
// (the secrets are this run's own, so that tests can use the admin API or mint a token;
// startupMs counts from the start of the process, module loading included).
// Everything else (errors, the servers' own logs if LOG_ENABLED=true) goes elsewhere or
// is not JSON with a "pds" key. It stops, and removes its data directory, on SIGTERM,
// SIGINT or when stdin closes (so a test runner that dies takes it along).
//
// Nothing here reaches past loopback: there is no app view, crawler, mailer or handle
// resolution by DNS to reach, and the PLC directory is this process's own.

import { once } from 'node:events'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'

import { Secp256k1Keypair } from '@atproto/crypto'
import { PDS } from '@atproto/pds'
import { Database as PlcDatabase, PlcServer } from '@did-plc/server'

const LOOPBACK = '127.0.0.1'
const HANDLE_DOMAIN = '.test'

/** An HTTP server bound to a free port of 127.0.0.1 and not yet handling requests:
 * the PDS needs its own port in its configuration before it exists, and the servers'
 * own `start()` would listen on every interface. */
async function loopbackServer() {
  const server = http.createServer()
  server.listen(0, LOOPBACK)
  await once(server, 'listening')
  return server
}

/** Stop accepting connections and drop the idle and open ones, so close() returns now. */
async function closeServer(server) {
  const closed = new Promise((resolve) => server.close(resolve))
  server.closeAllConnections()
  await closed
}

/** The PLC directory, in memory: DIDs created by the PDS live as long as this process. */
async function startPlc(server) {
  const { port } = server.address()
  const plc = PlcServer.create({ db: PlcDatabase.mock(), port })
  server.on('request', plc.app)
  return { plc, url: `http://${LOOPBACK}:${port}` }
}

/** The PDS, configured as Bluesky's dev-env configures its test PDS, minus the app view
 * and moderation services (none run here), with fresh secrets for each run. */
async function startPds(server, plcUrl, dataDirectory) {
  const { port } = server.address()
  const rotationKey = await Secp256k1Keypair.create({ exportable: true })
  const secrets = {
    adminPassword: randomBytes(16).toString('hex'),
    jwtSecret: randomBytes(32).toString('hex'),
  }
  const pds = await PDS.fromEnv({
    devMode: true,
    hostname: 'localhost',
    port,
    dataDirectory,
    blobstoreDiskLocation: path.join(dataDirectory, 'blobs'),
    didPlcUrl: plcUrl,
    serviceHandleDomains: [HANDLE_DOMAIN],
    inviteRequired: false,
    disableSsrfProtection: true,
    ...secrets,
    plcRotationKeyK256PrivateKeyHex: Buffer.from(await rotationKey.export()).toString('hex'),
  })
  await pds.ctx.sequencer.start()
  server.on('request', pds.app)
  return { pds, secrets, url: `http://${LOOPBACK}:${port}` }
}

/** Run `closers` newest first, each whatever the others do; throw the first failure. */
async function closeAll(closers) {
  const failures = []
  for (const close of closers.reverse()) {
    try {
      await close()
    } catch (error) {
      failures.push(error)
    }
  }
  if (failures.length > 0) throw failures[0]
}

/** Start both, announce them, and run until told to stop. */
async function main() {
  const dataDirectory = await mkdtemp(path.join(os.tmpdir(), 'hubbub-pds-'))
  const closers = [() => rm(dataDirectory, { recursive: true, force: true })]
  let stopping = null
  const stop = () => (stopping ??= closeAll(closers))
  const stopAndExit = (code) =>
    stop().then(
      () => process.exit(code),
      (error) => {
        console.error(error)
        process.exit(1)
      },
    )
  process.once('SIGTERM', () => stopAndExit(0))
  process.once('SIGINT', () => stopAndExit(0))
  process.stdin.once('end', () => stopAndExit(0))
  process.stdin.resume()

  try {
    const plcServer = await loopbackServer()
    const { plc, url: plcUrl } = await startPlc(plcServer)
    closers.push(() => plc.destroy(), () => closeServer(plcServer))

    const pdsServer = await loopbackServer()
    const { pds, secrets, url } = await startPds(pdsServer, plcUrl, dataDirectory)
    closers.push(() => pds.destroy(), () => closeServer(pdsServer))

    const ready = {
      pds: url,
      plc: plcUrl,
      handleDomain: HANDLE_DOMAIN,
      ...secrets,
      dataDirectory,
      startupMs: Math.round(performance.now()),
    }
    process.stdout.write(`${JSON.stringify(ready)}\n`)
  } catch (error) {
    console.error(error)
    await stopAndExit(1)
  }
}

await main()
