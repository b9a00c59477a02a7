// An EIP-1193 wallet for browser tests: real signatures with a test key (viem), switches for faults.
//
// Configured before the page loads through window.__TEST_WALLET__ = { key, chainId, startChainId,
// rejectSignatures, rejectSwitch, unknownChain }, which a test may change at any time. Calls to
// the chain go through window.__testWalletRpc(method, params), a binding the test provides (a
// wallet extension talks to its node outside the page, so the page's own rules do not apply).
// Every request is appended to window.__TEST_WALLET__.calls.
import { toHex } from "viem";
import { privateKeyToAccount } from "viem/accounts";

const settings = window.__TEST_WALLET__;
const account = privateKeyToAccount(settings.key);
let current = settings.startChainId ?? settings.chainId;
const listeners = { chainChanged: [], accountsChanged: [] };
settings.calls = [];

class ProviderRpcError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

function rejected() {
  return new ProviderRpcError(4001, "User rejected the request.");
}

function emit(event, value) {
  for (const listener of listeners[event] || []) listener(value);
}

async function node(method, params) {
  const answer = await window.__testWalletRpc(method, params ?? []);
  if (answer.error) {
    const error = new ProviderRpcError(answer.error.code ?? -32603, answer.error.message ?? "RPC error");
    error.data = answer.error.data;
    throw error;
  }
  return answer.result;
}

function onChain() {
  if (current !== settings.chainId) {
    throw new ProviderRpcError(4901, `the wallet is on chain ${current}, not ${settings.chainId}`);
  }
}

async function sendTransaction(tx) {
  onChain();
  if (settings.rejectSignatures) throw rejected();
  const from = account.address;
  const nonce = await node("eth_getTransactionCount", [from, "pending"]);
  const gas = await node("eth_estimateGas", [{ ...tx, from }]);
  const block = await node("eth_getBlockByNumber", ["latest", false]);
  const base = BigInt(block.baseFeePerGas ?? "0x0");
  const tip = 1_000_000_000n;
  const signed = await account.signTransaction({
    type: "eip1559",
    chainId: settings.chainId,
    nonce: Number(nonce),
    to: tx.to,
    data: tx.data,
    value: BigInt(tx.value ?? 0),
    gas: (BigInt(gas) * 13n) / 10n,
    maxPriorityFeePerGas: tip,
    maxFeePerGas: base * 2n + tip,
  });
  return node("eth_sendRawTransaction", [signed]);
}

async function handle(method, params) {
  switch (method) {
    case "eth_requestAccounts":
    case "eth_accounts":
      return [account.address];
    case "eth_chainId":
      return toHex(current);
    case "wallet_switchEthereumChain": {
      if (settings.rejectSwitch) throw rejected();
      const wanted = Number(params[0].chainId);
      if (settings.unknownChain || wanted !== settings.chainId) {
        throw new ProviderRpcError(4902, "Unrecognized chain ID");
      }
      current = wanted;
      emit("chainChanged", toHex(current));
      return null;
    }
    case "personal_sign":
      if (settings.rejectSignatures) throw rejected();
      return account.signMessage({ message: { raw: params[0] } });
    case "eth_signTypedData_v4": {
      if (settings.rejectSignatures) throw rejected();
      const data = JSON.parse(params[1]);
      if (Number(data.domain.chainId) !== current) {
        throw new ProviderRpcError(-32603, "the typed data names another chain than the wallet's");
      }
      const { EIP712Domain: _domain, ...types } = data.types;
      return account.signTypedData({ domain: data.domain, types, primaryType: data.primaryType, message: data.message });
    }
    case "eth_sendTransaction":
      return sendTransaction(params[0]);
    default:
      return node(method, params);
  }
}

window.ethereum = {
  isTestWallet: true,
  async request({ method, params }) {
    settings.calls.push(method);
    return handle(method, params);
  },
  on(event, listener) {
    (listeners[event] ||= []).push(listener);
  },
  removeListener(event, listener) {
    listeners[event] = (listeners[event] || []).filter((l) => l !== listener);
  },
};
