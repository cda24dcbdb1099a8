// tests/mcp/sdk_client.mjs - drive Lakehouse's MCP server with the official
// TypeScript SDK client (@modelcontextprotocol/sdk), over stdio or HTTP.
//
//   node sdk_client.mjs PLAN.json
//
// PLAN: {transport: "stdio", command, args, env} or {transport: "http",
// url, token}, then calls: [{tool, arguments, capture?: {VAR: FIELD}}],
// resource: dataset name to read, list_changed: true to wait for
// notifications/resources/list_changed after the calls. "$VAR" in an
// argument is replaced by what an earlier call captured. Prints one JSON
// line per event (connected, tools, call, resources, read, list_changed,
// closed, or error) on stdout and exits 0, or 1 after an error event.
// The SDK checks every result against the tool's outputSchema itself.
//
// Run by tests/integration/test_mcp_sdk.py from a directory whose
// node_modules is the cache scripts/mcp-npm fills.

import { readFileSync } from 'node:fs';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ResourceListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';

const plan = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const out = (event) => process.stdout.write(JSON.stringify(event) + '\n');
const vars = {};

function substitute(value) {
    if (typeof value === 'string' && value.startsWith('$') && value.slice(1) in vars)
        return vars[value.slice(1)];
    if (Array.isArray(value))
        return value.map(substitute);
    if (value && typeof value === 'object')
        return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, substitute(v)]));
    return value;
}

async function main() {
    const client = new Client({ name: 'lakehouse-sdk-test', version: '1.0.0' }, { capabilities: {} });
    let listChanged = 0;
    client.setNotificationHandler(ResourceListChangedNotificationSchema, () => { listChanged++; });
    let transport;
    if (plan.transport === 'stdio')
        transport = new StdioClientTransport({
            command: plan.command, args: plan.args, env: plan.env, stderr: 'inherit'
        });
    else
        transport = new StreamableHTTPClientTransport(new URL(plan.url), {
            requestInit: plan.token ? { headers: { Authorization: `Bearer ${plan.token}` } } : {}
        });
    await client.connect(transport);
    out({ event: 'connected', server: client.getServerVersion(),
          capabilities: client.getServerCapabilities(),
          session: transport.sessionId ?? null });

    const tools = await client.listTools();
    out({ event: 'tools', tools: tools.tools.map((t) => ({
        name: t.name, description: t.description, inputSchema: t.inputSchema,
        outputSchema: t.outputSchema ?? null })) });

    for (const call of plan.calls ?? []) {
        const args = substitute(call.arguments ?? {});
        const started = Date.now();
        const result = await client.callTool({ name: call.tool, arguments: args }, undefined,
                                             { timeout: 120000 });
        const structured = result.structuredContent ?? null;
        for (const [name, field] of Object.entries(call.capture ?? {}))
            if (structured && field in structured)
                vars[name] = structured[field];
        out({ event: 'call', tool: call.tool, label: call.label ?? call.tool,
              isError: result.isError === true, text: result.content?.[0]?.text ?? null,
              structured, ms: Date.now() - started });
    }

    const resources = await client.listResources();
    out({ event: 'resources', resources: resources.resources, nextCursor: resources.nextCursor ?? null });
    if (plan.resource) {
        const read = await client.readResource({ uri: `lakehouse://datasets/${plan.resource}` });
        out({ event: 'read', contents: read.contents });
    }
    if (plan.list_changed) {
        const deadline = Date.now() + 10000;
        while (listChanged === 0 && Date.now() < deadline)
            await new Promise((resolve) => setTimeout(resolve, 50));
        out({ event: 'list_changed', count: listChanged });
    }
    if (plan.transport === 'http')
        await transport.terminateSession();
    await client.close();
    out({ event: 'closed' });
}

main().then(() => process.exit(0), (error) => {
    out({ event: 'error', message: error instanceof Error ? error.message : String(error),
          code: error?.code ?? null });
    process.exit(1);
});
