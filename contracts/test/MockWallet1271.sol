// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IERC1271} from "@openzeppelin/contracts/interfaces/IERC1271.sol";
import {Address} from "@openzeppelin/contracts/utils/Address.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";

/// @title MockWallet1271 (test contract, never deployed outside tests)
/// @notice A minimal EIP-1271 smart-contract wallet: a signature is valid if its current EOA owner
/// made it. The owner calls other contracts through the wallet (`execute`) and can rotate the
/// owner key (`setOwner`); the wallet's address, and so whatever it holds, stays the same.
contract MockWallet1271 is IERC1271 {
    address private _owner;

    /// @notice Emitted when the owner key is rotated.
    /// @param previousOwner The old owner.
    /// @param newOwner The new owner.
    event OwnerSet(address indexed previousOwner, address indexed newOwner);

    /// @notice Thrown when someone other than the owner calls an owner-only function.
    /// @param caller The caller.
    error MockWallet1271NotOwner(address caller);

    modifier onlyOwner() {
        if (msg.sender != _owner) revert MockWallet1271NotOwner(msg.sender);
        _;
    }

    /// @notice Deploys a wallet owned by `owner_`.
    /// @param owner_ The EOA whose signatures the wallet accepts.
    constructor(address owner_) {
        _owner = owner_;
        emit OwnerSet(address(0), owner_);
    }

    /// @notice Rotates the owner key. Owner only.
    /// @param newOwner The EOA whose signatures the wallet accepts from now on.
    function setOwner(address newOwner) external onlyOwner {
        emit OwnerSet(_owner, newOwner);
        _owner = newOwner;
    }

    /// @notice Calls `target` with `data` as the wallet. Owner only; a revert is passed on as is.
    /// @param target The contract to call.
    /// @param data The calldata.
    /// @return The call's return data.
    function execute(address target, bytes calldata data) external onlyOwner returns (bytes memory) {
        return Address.functionCall(target, data);
    }

    /// @notice The EOA whose signatures the wallet accepts.
    /// @return The owner.
    function owner() external view returns (address) {
        return _owner;
    }

    /// @inheritdoc IERC1271
    function isValidSignature(bytes32 hash, bytes calldata signature) external view returns (bytes4) {
        (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecover(hash, signature);
        if (err == ECDSA.RecoverError.NoError && signer == _owner) return IERC1271.isValidSignature.selector;
        return 0xffffffff;
    }
}
