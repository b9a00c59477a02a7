// The patient's browser wallet (EIP-1193): connect, chain, Sign-In with Ethereum, EIP-712, transactions.
import { encodeFunctionData, getAddress, parseAbi, toHex } from "viem";
import { createSiweMessage } from "viem/siwe";

/** EIP-1193 codes the page explains. */
export const USER_REJECTED = 4001;
export const UNKNOWN_CHAIN = 4902;

/** The calls a wallet makes itself (appointing a guardian has no signature path). */
export const REGISTRY_ABI = parseAbi([
  "function setDelegate(address delegate, bytes32 scope, uint48 expiresAt)",
  "function grant(address grantee, bytes32 scope, uint32 purposes, bool identified, uint48 notBefore, uint48 expiresAt)",
  "function revoke(address grantee, bytes32 scope)",
]);

/** A wallet refusal or failure, with its EIP-1193 code. */
export class WalletError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

function provider() {
  if (!window.ethereum) throw new WalletError(0, "no wallet");
  return window.ethereum;
}

export function hasWallet() {
  return Boolean(window.ethereum);
}

async function request(method, params) {
  try {
    return await provider().request({ method, params });
  } catch (error) {
    const code = error && typeof error.code === "number" ? error.code : -1;
    throw new WalletError(code, (error && error.message) || String(error));
  }
}

export async function connect() {
  const accounts = await request("eth_requestAccounts", []);
  if (!accounts || !accounts.length) throw new WalletError(USER_REJECTED, "no account");
  return getAddress(accounts[0]);
}

export async function chainId() {
  return Number(await request("eth_chainId", []));
}

export async function switchChain(id) {
  await request("wallet_switchEthereumChain", [{ chainId: toHex(id) }]);
}

export function onChange(handler) {
  const p = window.ethereum;
  if (!p || typeof p.on !== "function") return;
  p.on("chainChanged", handler);
  p.on("accountsChanged", handler);
}

/** The EIP-4361 message for this gateway, signed with personal_sign. */
export async function signIn(address, chain, nonce) {
  const now = new Date();
  const message = createSiweMessage({
    domain: window.location.host,
    address,
    statement:
      "Sign in to see and manage who may see your medical images. Signing in is free and sends nothing to the chain.",
    uri: `${window.location.origin}/`,
    version: "1",
    chainId: chain,
    nonce,
    issuedAt: now,
    expirationTime: new Date(now.getTime() + 10 * 60 * 1000),
  });
  const signature = await request("personal_sign", [toHex(message), address]);
  return { message, signature };
}

/** Ask the wallet to sign EIP-712 typed data exactly as the gateway built it. */
export async function signTypedData(address, typedData) {
  return request("eth_signTypedData_v4", [address, JSON.stringify(typedData)]);
}

/** Send a ConsentRegistry call from the wallet (the patient pays the gas); return its hash. */
export async function sendCall(address, registry, functionName, args) {
  const data = encodeFunctionData({ abi: REGISTRY_ABI, functionName, args });
  const tx = { from: address, to: registry, data };
  await request("eth_call", [tx, "latest"]); // refuse early what the chain would refuse
  return request("eth_sendTransaction", [tx]);
}
